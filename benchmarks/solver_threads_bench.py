"""The torch solvers on a CPU with one intra-op thread against all of them, by problem size.

For each size, ``featx.fit(..., solver="torch", device="cpu")`` runs logistic regression
and LinearSVC (5-fold, 5 C values) on fit_bench's synthetic features twice: once on one
thread, once on every thread torch has (``featx.fitting.solvers.linear.SINGLE_THREAD_VALUES``
set to make each choice). It prints both wall times and their ratio; featx runs problems
below ``SINGLE_THREAD_VALUES`` values on one thread.

Run it alone, on a quiet machine (a loaded one favours one thread at every size)::

    flock /tmp/featx-bench.lock python benchmarks/solver_threads_bench.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = ((1_500, 64), (4_000, 256), (8_000, 512), (20_000, 1_024))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(f"{n}x{d}" for n, d in SIZES), help="comma list of ROWSxFEATURES")
    parser.add_argument("--clf", default="logreg,linearsvc", help="comma list")
    args = parser.parse_args(argv)

    import torch
    from fit_bench import C_GRID, synthetic_features

    import featx
    from featx.cache import write_features
    from featx.core.console import format_table, setup_logging
    from featx.fitting.solvers import linear

    setup_logging(-1)
    work = Path(tempfile.mkdtemp(prefix="featx-threads-"))
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} intra-op threads; single-thread below {linear.SINGLE_THREAD_VALUES:,} values", flush=True)
    rows = []
    for size in args.sizes.split(","):
        n, d = (int(part) for part in size.split("x"))
        arrays = synthetic_features(n, n // 4, d, 10)
        path = write_features(
            work / "bench" / f"synthetic{n}x{d}__0123456789abcdef.h5",
            arrays,
            class_names=[f"class_{i}" for i in range(10)],
            attrs={"backbone": "synthetic", "dataset": "bench"},
        )
        if not rows:  # torch's import and first-call costs, outside the timings
            featx.fit(path, clf="logreg", grid={"C": [1.0]}, cv=2, solver="torch", device="cpu", save=False)
        for clf in args.clf.split(","):
            seconds = {}
            for label, limit in (("one", sys.maxsize), ("all", 0)):
                linear.SINGLE_THREAD_VALUES = limit
                start = time.perf_counter()
                featx.fit(path, clf=clf, grid={"C": list(C_GRID)}, cv=5, solver="torch", device="cpu", save=False)
                seconds[label] = time.perf_counter() - start
            print(f"{n} x {d} {clf}: one thread {seconds['one']:.2f} s, {threads} threads {seconds['all']:.2f} s", flush=True)
            rows.append(
                [
                    f"{n} x {d}",
                    f"{n * d:,}",
                    clf,
                    f"{seconds['one']:.2f}",
                    f"{seconds['all']:.2f}",
                    f"{seconds['one'] / seconds['all']:.2f}",
                ]
            )
    print()
    print(format_table(rows, ["size", "values", "classifier", "1 thread s", f"{threads} threads s", "1 / all"]))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())

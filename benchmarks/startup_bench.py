"""Start-up cost of the commands a user runs most: ``featx --help``, ``featx cache ls`` and
``featx report``, each in a fresh interpreter, and whether each imported torch.

Prints, per command, the median and best wall time over ``--repeats`` runs and the
heavy packages it imported (torch, timm, sklearn, pandas, matplotlib, pydantic, dask).
The cache and reports folders are made in a temporary directory: a small cache entry
and one run record (fitted here once, before timing) so that ``report`` renders a page.

    python benchmarks/startup_bench.py [--repeats 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "sklearn", "pandas", "matplotlib", "pydantic", "dask", "distributed", "h5py", "scipy")
COMMANDS = {
    "featx --help": ["--help"],
    "featx cache ls": ["cache", "ls"],
    "featx report": ["report", "--no-pca"],
}
#: runs the CLI in-process and reports which heavy top-level packages ended up imported
PROBE = textwrap.dedent(
    """
    import sys, json
    from featx.cli import main
    try:
        main(sys.argv[1:], prog_name="featx", standalone_mode=False)
    finally:
        heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
        print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
    """
).replace("HEAVY", repr(HEAVY), 1).replace("set(HEAVY)", f"set({HEAVY!r})")


def prepare(folder: Path) -> dict[str, str]:
    """A cache with one small entry and a reports folder with one run record."""
    env = {**os.environ, "FEATX_CACHE_DIR": str(folder / "features"), "FEATX_REPORTS_DIR": str(folder / "reports"),
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    setup = textwrap.dedent(
        """
        import numpy as np, os
        from pathlib import Path
        import featx
        try:
            from featx.cache import write_features
        except ImportError:  # the flat layout before featx 0.2
            from featx.cache import write_features
        rng = np.random.default_rng(0)
        arrays = {s: (rng.normal(size=(n, 8)).astype("float32"), (np.arange(n) % 3).astype("int64")) for s, n in (("train", 60), ("test", 30))}
        path = write_features(Path(os.environ["FEATX_CACHE_DIR"]) / "synthetic" / "bench__0123456789abcdef.h5", arrays,
                              class_names=["a", "b", "c"], attrs={"dataset": "synthetic", "backbone": "bench", "weights": "random"})
        try:
            featx.fit(path, featx.FitConfig(clf="logreg", grid={"C": [1.0]}, cv=3), n_jobs=1)
        except TypeError:  # before featx 0.2, n_jobs was a FitConfig field
            featx.fit(path, featx.FitConfig(clf="logreg", grid={"C": [1.0]}, cv=3, n_jobs=1))
        """
    )
    subprocess.run([sys.executable, "-c", setup], env=env, check=True, cwd=folder)
    return env


def time_command(args: list[str], env: dict[str, str], repeats: int, cwd: Path) -> dict[str, object]:
    times, heavy = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, cwd=cwd)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{args} failed:\n{done.stderr}")
        heavy = json.loads(next(line for line in done.stderr.splitlines() if line.startswith("HEAVY="))[6:])
    return {"median_s": statistics.median(times), "best_s": min(times), "imports": heavy, "torch": "torch" in heavy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="featx-startup-") as tmp:
        folder = Path(tmp)
        env = prepare(folder)
        results = {name: time_command(argv, env, args.repeats, folder) for name, argv in COMMANDS.items()}
    bare = min(_timed([sys.executable, "-c", "pass"]) for _ in range(args.repeats))
    print(f"python -c pass: {bare:.3f} s (best of {args.repeats})")
    for name, figures in results.items():
        print(f"{name:16s} median {figures['median_s']:.3f} s  best {figures['best_s']:.3f} s  torch imported: {figures['torch']}  "
              f"heavy imports: {', '.join(figures['imports']) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"python_bare_s": bare, **results}, indent=2) + "\n")


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()

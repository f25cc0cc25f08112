"""Start-up cost of the commands a user runs most: ``featx --help``, ``featx cache ls`` and
``featx report``, each in a fresh interpreter, and whether each imported torch.

Prints, per command, the median and best wall time over ``--repeats`` runs and the heavy
packages it imported (torch, timm, sklearn, pandas, matplotlib, pydantic, dask, ...).
The cache and reports folders are made in a temporary directory: a small cache entry and
one run record (fitted once, before timing) so that ``report`` renders a page.

    python benchmarks/startup_bench.py [--repeats 9] [--json out.json] [--tree OTHER_CHECKOUT ...]

With ``--tree``, the same commands of other checkouts (e.g. ``git worktree add /tmp/old
6fc7f23``) are timed in the same run, interleaved repeat by repeat, so that a busy machine
slows them alike.
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
    f"""
    import sys, json
    from featx.cli import main
    try:
        main(sys.argv[1:], prog_name="featx", standalone_mode=False)
    finally:
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
    """
)
#: one small cache entry and one run record; works with the flat layout before featx 0.2 too
SETUP = textwrap.dedent(
    """
    import numpy as np, os
    from pathlib import Path
    import featx
    try:
        from featx.cache import write_features
    except ImportError:
        from featx.cachefile import write_features
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


def prepare(folder: Path, tree: Path) -> dict[str, str]:
    """The environment of ``tree``'s featx, with a cache and a reports folder in ``folder``."""
    env = {
        **os.environ,
        "FEATX_CACHE_DIR": str(folder / "features"),
        "FEATX_REPORTS_DIR": str(folder / "reports"),
        "PYTHONPATH": str(tree),
        "HF_HUB_OFFLINE": "1",
    }
    subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, cwd=folder)
    return env


def run_once(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, list[str]]:
    """Wall seconds of one command in a fresh interpreter, and the heavy packages it imported."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args} failed:\n{done.stderr}")
    heavy = json.loads(next(line for line in done.stderr.splitlines() if line.startswith("HEAVY="))[6:])
    return seconds, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another checkout to time beside this one")
    args = parser.parse_args()
    trees = [ROOT, *(tree.resolve() for tree in args.tree)]
    times: dict[tuple[str, str], list[float]] = {}
    imports: dict[tuple[str, str], list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="featx-startup-") as tmp:
        setups = {}
        for number, tree in enumerate(trees):
            folder = Path(tmp) / str(number)
            folder.mkdir()
            setups[str(tree)] = (prepare(folder, tree), folder)
        for _ in range(args.repeats):
            for tree, (env, folder) in setups.items():
                for name, argv in COMMANDS.items():
                    seconds, heavy = run_once(argv, env, folder)
                    times.setdefault((tree, name), []).append(seconds)
                    imports[(tree, name)] = heavy
    bare = min(_timed([sys.executable, "-c", "pass"]) for _ in range(args.repeats))
    print(f"python -c pass: {bare:.3f} s (best of {args.repeats})")
    results: dict[str, dict[str, dict[str, object]]] = {}
    for (tree, name), values in times.items():
        heavy = imports[(tree, name)]
        results.setdefault(tree, {})[name] = {
            "median_s": statistics.median(values),
            "best_s": min(values),
            "imports": heavy,
            "torch": "torch" in heavy,
        }
        print(
            f"{tree}  {name:16s} median {statistics.median(values):.3f} s  best {min(values):.3f} s  "
            f"torch imported: {'torch' in heavy}  heavy imports: {', '.join(heavy) or 'none'}"
        )
    if args.json:
        args.json.write_text(json.dumps({"python_bare_s": bare, "repeats": args.repeats, **results}, indent=2) + "\n")


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()

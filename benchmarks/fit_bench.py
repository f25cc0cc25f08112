"""featx's grid search against a hand-written scikit-learn GridSearchCV, side by side.

For each classifier the same features, folds and grid go through

* the reference: ``GridSearchCV(Pipeline([StandardScaler(), estimator]), grid,
  cv=StratifiedKFold(5, shuffle=True, random_state=0), n_jobs=-1)``, refit on the whole
  train split, scored on the test split;
* featx: ``featx.fit(...)`` on the same data written as a featx cache file (reading the
  file, the search, the refit and the test scoring all count).

It prints seconds, speed-up, best CV accuracy, test accuracy, and the largest difference
between the two CV accuracies of any grid point on any fold.

Features: ``--features PATH.h5`` (any file in the featx cache layout), or synthetic ones
(the default): 10 classes in a 64-d latent space (a centre, variation along a class's own
8-d subspace, isotropic spread), mapped to ``--dim`` dimensions by a random matrix with
power-law row scales (a few directions carry most of the variance, as in CNN
embeddings), then ReLU (pooled CNN features are non-negative). The spread is set so that
the classifiers land about where they do on CNN features of CIFAR-10: logistic regression
about 90% test accuracy, k-NN about 80%.

Run it alone (it uses every core)::

    flock /tmp/featx-bench.lock python benchmarks/fit_bench.py              # 20,000 x 1,024
    flock /tmp/featx-bench.lock python benchmarks/fit_bench.py --quick      # 4,000 x 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

C_GRID = (0.0001, 0.001, 0.01, 0.1, 1.0)
K_GRID = (1, 3, 5, 7, 11, 15, 21, 31)


def synthetic_features(
    n_train: int,
    n_test: int,
    dim: int,
    n_classes: int,
    *,
    seed: int = 0,
    latent: int = 64,
    separation: float = 0.2,
    spread: float = 1.5,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Class-structured, correlated, non-negative float32 features (see the module docstring).

    In a ``latent``-d space each class is a centre plus variation along its own 8-d
    subspace plus isotropic ``spread``; a random loading with power-law row scales maps
    it to ``dim`` dimensions; small noise and a ReLU follow.
    """
    rng = np.random.default_rng(seed)
    loading = rng.normal(size=(latent, dim)) * (np.arange(1, latent + 1) ** -0.5)[:, None]
    centres = rng.normal(size=(n_classes, latent)) * separation
    bases = rng.normal(size=(n_classes, 8, latent)) * 1.5 / np.sqrt(8)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, n_classes, n)
        within = np.einsum("ns,nsl->nl", rng.normal(size=(n, 8)), bases[labels])
        points = centres[labels] + within + spread * rng.normal(size=(n, latent))
        features = np.maximum(points @ loading + 0.05 * rng.normal(size=(n, dim)), 0.0)
        arrays[split] = (features.astype(np.float32), labels.astype(np.int64))
    return arrays


def reference_estimator(clf: str, seed: int) -> Any:
    """The estimators, written by hand with the same fixed parameters as featx's registry."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import LinearSVC

    if clf == "linearsvc":
        return LinearSVC(dual="auto", max_iter=5000, random_state=seed)
    if clf == "logreg":
        return LogisticRegression(max_iter=1000, random_state=seed)
    return KNeighborsClassifier()


def run_reference(
    clf: str, grid: dict[str, list[Any]], arrays: dict[str, tuple[np.ndarray, np.ndarray]], *, cv: int, seed: int, n_jobs: int
) -> dict[str, Any]:
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    (X, y), (X_test, y_test) = arrays["train"], arrays["test"]
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", reference_estimator(clf, seed))])
    search = GridSearchCV(
        pipeline, {f"clf__{k}": v for k, v in grid.items()}, cv=StratifiedKFold(cv, shuffle=True, random_state=seed), n_jobs=n_jobs
    )
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(X, y)
        test_accuracy = float(search.score(X_test, y_test))
    seconds = time.perf_counter() - start
    folds = np.stack([search.cv_results_[f"split{i}_test_score"] for i in range(cv)], axis=1)
    return {
        "seconds": seconds,
        "cv_best": float(search.best_score_),
        "best_params": {k.removeprefix("clf__"): v for k, v in search.best_params_.items()},
        "test_accuracy": test_accuracy,
        "fold_scores": folds,
        "warnings": sorted({str(w.message).split("\n")[0] for w in caught})[:3],
    }


def run_featx(
    clf: str, grid: dict[str, list[Any]], path: Path, *, cv: int, seed: int, n_jobs: int, reports: Path, solver: str, device: str
) -> dict[str, Any]:
    import featx

    start = time.perf_counter()
    record = featx.fit(
        path, clf=clf, grid=grid, cv=cv, seed=seed, n_jobs=n_jobs, scale="standard", reports_dir=reports, solver=solver, device=device
    )
    seconds = time.perf_counter() - start
    return {
        "record": record,
        "solver": record.solver,
        "solver_info": record.solver_info,
        "seconds": seconds,
        "cv_best": record.cv_best_score,
        "best_params": record.best_params,
        "test_accuracy": record.test_accuracy,
        "fold_scores": np.array([p.fold_scores for p in record.cv_results]),
        "search_seconds": record.search_seconds,
        "fit_seconds": record.fit_seconds,
        "warnings": record.warnings[:3],
    }


def objective_gap(clf: str, record: Any, arrays: dict[str, tuple[np.ndarray, np.ndarray]], C: float, *, reports: Path) -> str:
    """featx's model against scikit-learn's own estimator on the whole training split at the
    chosen C: their objective values (scikit-learn's objective, float64) and the relative gap."""
    from sklearn.preprocessing import StandardScaler

    import featx
    from featx.fitting.solvers.linear import objective

    if clf == "knn":
        return "-"
    X, y = arrays["train"]
    Xs = StandardScaler().fit_transform(X).astype(np.float32)
    ours = featx.load_model(record, reports).steps[-1][1]
    theirs = reference_estimator(clf, 0).set_params(C=C).fit(Xs, y)
    loss = "logistic" if clf == "logreg" else "squared_hinge"
    codes = np.searchsorted(theirs.classes_, y)
    values = [objective(loss, Xs, codes, model.coef_, model.intercept_, C) for model in (ours, theirs)]
    return f"{(values[0] - values[1]) / abs(values[1]):+.1e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, help="an .h5 file in the featx cache layout (default: synthetic)")
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=1_024)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="4,000 x 256 synthetic features, for iterating")
    parser.add_argument("--clf", default="linearsvc,logreg,knn", help="comma list")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--knn-weights", default="uniform", help="weights grid of k-NN (comma list)")
    parser.add_argument("--skip-reference", action="store_true", help="time featx only")
    parser.add_argument("--solver", default="auto", help="featx's solver: auto, torch, sklearn [auto]")
    parser.add_argument("--device", default="auto", help="where featx's torch solver runs [auto]")
    parser.add_argument(
        "--grids",
        choices=("bench", "classic"),
        default="bench",
        help="bench: 5 C values, k in 1..31 (uniform, euclidean); classic: the classic pipeline's (13 C for LinearSVC, 11 for "
        "logistic regression, k = 1..51 x uniform/distance x euclidean/cosine)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.dim = 4_000, 1_000, 256

    from featx.cache import read_split, write_features
    from featx.core.console import format_table, setup_logging

    setup_logging(-1)
    work = Path(tempfile.mkdtemp(prefix="featx-bench-"))
    if args.features:
        path = args.features
        arrays = {split: read_split(path, split) for split in ("train", "test")}
        source = str(path)
    else:
        arrays = synthetic_features(args.n_train, args.n_test, args.dim, args.classes, seed=args.seed)
        path = write_features(
            work / "bench" / "synthetic__0123456789abcdef.h5",
            arrays,
            class_names=[f"class_{i}" for i in range(args.classes)],
            attrs={"backbone": "synthetic", "dataset": "bench"},
        )
        source = f"synthetic {args.n_train} + {args.n_test} x {args.dim}, {args.classes} classes"
    n, d = arrays["train"][0].shape
    import platform

    import sklearn

    print(f"features: {source} (train {n} x {d}); {args.cv}-fold CV; n_jobs={args.n_jobs}", flush=True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}, "
        f"numpy {np.__version__}, scikit-learn {sklearn.__version__}",
        flush=True,
    )

    grids = {
        "linearsvc": {"C": list(C_GRID)},
        "logreg": {"C": list(C_GRID)},
        "knn": {"n_neighbors": list(K_GRID), "weights": args.knn_weights.split(","), "metric": ["euclidean"]},
    }
    if args.grids == "classic":  # pipelines/cifar10-classic.yaml
        grids = {
            "linearsvc": {"C": [float(c) for c in np.logspace(-6, 0, 13)]},
            "logreg": {"C": [float(c) for c in np.logspace(-5, 0, 11)]},
            "knn": {"n_neighbors": [1, 3, 5, 7, 11, 15, 21, 31, 51], "weights": ["uniform", "distance"], "metric": ["euclidean", "cosine"]},
        }
    rows, figures = [], {}
    totals = {"featx": 0.0, "reference": 0.0}
    for clf in args.clf.split(","):
        ours = run_featx(
            clf,
            grids[clf],
            path,
            cv=args.cv,
            seed=args.seed,
            n_jobs=args.n_jobs,
            reports=work / "reports",
            solver=args.solver,
            device=args.device,
        )
        gap = (
            "-"
            if args.skip_reference
            else objective_gap(clf, ours["record"], arrays, float(ours["best_params"].get("C", 1.0)), reports=work / "reports")
        )
        print(
            f"{clf}: featx {ours['seconds']:.1f} s (solver {ours['solver']}, search {ours['search_seconds']:.1f} s, refit "
            f"{ours['fit_seconds']:.1f} s), cv {ours['cv_best']:.4f}, test {ours['test_accuracy']:.4f}, best {ours['best_params']}, "
            f"objective gap to scikit-learn's estimator on the whole split {gap}, {ours['solver_info']}",
            flush=True,
        )
        figures[clf] = {"featx": {k: v for k, v in ours.items() if k not in ("fold_scores", "record")}, "objective_gap": gap}
        totals["featx"] += ours["seconds"]
        if args.skip_reference:
            rows.append([clf, f"{ours['seconds']:.1f}", "-", "-", f"{ours['cv_best']:.4f} / -", f"{ours['test_accuracy']:.4f} / -", "-"])
            continue
        ref = run_reference(clf, grids[clf], arrays, cv=args.cv, seed=args.seed, n_jobs=args.n_jobs)
        print(
            f"{clf}: reference {ref['seconds']:.1f} s, cv {ref['cv_best']:.4f}, test {ref['test_accuracy']:.4f}, best {ref['best_params']}"
            + (f", warnings: {ref['warnings']}" if ref["warnings"] else ""),
            flush=True,
        )
        totals["reference"] += ref["seconds"]
        diff = float(np.abs(ours["fold_scores"] - ref["fold_scores"]).max())
        figures[clf]["reference"] = {k: v for k, v in ref.items() if k != "fold_scores"}
        figures[clf]["max_fold_score_difference"] = diff
        rows.append(
            [
                clf,
                f"{ours['seconds']:.1f}",
                f"{ref['seconds']:.1f}",
                f"{ref['seconds'] / ours['seconds']:.1f}x",
                f"{ours['cv_best']:.4f} / {ref['cv_best']:.4f}",
                f"{ours['test_accuracy']:.4f} / {ref['test_accuracy']:.4f}",
                f"{diff:.5f}",
            ]
        )
    if not args.skip_reference:
        rows.append(
            [
                "all three",
                f"{totals['featx']:.1f}",
                f"{totals['reference']:.1f}",
                f"{totals['reference'] / totals['featx']:.1f}x",
                "",
                "",
                "",
            ]
        )
    print()
    print(
        format_table(
            rows,
            ["classifier", "featx s", "GridSearchCV s", "speed-up", "CV best featx / ref", "test acc featx / ref", "max |dCV| per fold"],
        )
    )
    if args.json:
        args.json.write_text(
            json.dumps({"source": source, "shape": [n, d], "totals": totals, "classifiers": figures}, indent=2, default=str)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

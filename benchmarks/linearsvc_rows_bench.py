"""LinearSVC's search when a fold has fewer rows than features: liblinear against featx's solver.

Small labelled sets of wide features (a few hundred images, 1,280 to 4,096 features) are
where liblinear's dual coordinate descent is at its slowest when the features are
correlated, as a random network's or raw pixels are. For each case, one fold's worth of
rows, a path of C values, BLAS single-threaded (as in featx's fold workers):

* liblinear: ``LinearSVC(C=C, dual="auto", max_iter=5000)`` for each C (scikit-learn's
  default tolerance), as ``GridSearchCV`` runs it;
* featx: :func:`featx.fitting.solvers.l2svm.solve_path` on the whole path (warm-started,
  solved in the rows' space when rows < features).

It prints seconds, the largest relative objective gap (featx over liblinear, minus 1:
negative means featx is lower) and the share of equal training predictions.

Cases: ``iid`` (Gaussian features: easy for liblinear), ``lowrank`` (features drawn from a
40-d latent space plus noise, then standardised: like a random network's), ``pixels``
(smooth images of 32 x 32 x 3 values, standardised).

    flock /tmp/featx-bench.lock python benchmarks/linearsvc_rows_bench.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {
    # name: (rows, features, classes, C values)
    "iid": (240, 4096, 10, np.logspace(-6, 0, 13).tolist()),
    "lowrank": (960, 1280, 6, [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 1.0]),
    "pixels": (960, 3072, 6, [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 1.0]),
}


def make_case(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of one case (standardised float32)."""
    from sklearn.preprocessing import StandardScaler

    n, d, k, _ = CASES[name]
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    if name == "iid":
        X = rng.normal(size=(n, d)) + 0.5 * np.eye(k)[y] @ rng.normal(size=(k, d))
    elif name == "lowrank":
        latent = rng.normal(size=(n, 40)) + 0.3 * np.eye(k)[y] @ rng.normal(size=(k, 40))
        X = latent @ rng.normal(size=(40, d)) + 0.1 * rng.normal(size=(n, d))
    else:  # smooth random images: low-frequency patterns, a class tint, pixel noise
        side = 32
        coarse = rng.normal(size=(n, 4, 4, 3)) + 0.5 * (np.eye(k)[y] @ rng.normal(size=(k, 48))).reshape(n, 4, 4, 3)
        images = coarse.repeat(side // 4, axis=1).repeat(side // 4, axis=2) + 0.3 * rng.normal(size=(n, side, side, 3))
        X = images.reshape(n, d)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def objective(X: np.ndarray, y: np.ndarray, classes: np.ndarray, W: np.ndarray, C: float) -> np.ndarray:
    """LinearSVC's one-vs-rest objective per class at ``W`` (bias feature 1)."""
    from featx.fitting.solvers import l2svm

    Y = l2svm.one_vs_rest_targets(y, classes).astype(np.float64)
    Z = l2svm.scores(X, W, 1.0).astype(np.float64)
    return 0.5 * (W**2).sum(axis=0) + C * (np.maximum(0.0, 1.0 - Y * Z) ** 2).sum(axis=0)


def run_case(name: str) -> dict[str, object]:
    from sklearn.svm import LinearSVC
    from threadpoolctl import threadpool_limits

    from featx.fitting.solvers import l2svm

    X, y = make_case(name)
    Cs = CASES[name][3]
    classes = np.unique(y)
    with threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        solutions = l2svm.solve_path(X, l2svm.one_vs_rest_targets(y, classes), Cs)
        featx_seconds = time.perf_counter() - start
        liblinear_seconds, gaps, agreement = 0.0, [], []
        for C, W in zip(Cs, solutions):
            start = time.perf_counter()
            model = LinearSVC(C=C, dual="auto", max_iter=5000).fit(X, y)
            liblinear_seconds += time.perf_counter() - start
            reference = np.vstack([model.coef_.T, model.intercept_[None, :]])
            if len(classes) == 2:
                reference = reference[:, :1]
            gaps.append(float((objective(X, y, classes, W, C) / objective(X, y, classes, reference, C) - 1).max()))
            agreement.append(float(np.mean(l2svm.predict_ovr(l2svm.scores(X, W, 1.0), classes) == model.predict(X))))
    return {
        "case": name,
        "rows": X.shape[0],
        "features": X.shape[1],
        "classes": len(classes),
        "C_values": len(Cs),
        "liblinear_s": round(liblinear_seconds, 2),
        "featx_s": round(featx_seconds, 2),
        "speedup": round(liblinear_seconds / featx_seconds, 1),
        "max_objective_gap": max(gaps),
        "min_prediction_agreement": min(agreement),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    args = parser.parse_args()
    for name in args.cases.split(","):
        print(json.dumps(run_case(name)), flush=True)


if __name__ == "__main__":
    main()

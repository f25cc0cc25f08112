"""The float32 Newton solver reaches LinearSVC's own optimum (liblinear run to a tight tolerance)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from featx.fitting.solvers import l2svm
from tests.conftest import make_features


def _data(
    n: int = 400, dim: int = 12, n_classes: int = 4, separation: float = 0.8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrays = make_features(n_train=n, n_test=n // 2, dim=dim, n_classes=n_classes, separation=separation, seed=seed)
    (X, y), (X_val, y_val) = arrays["train"], arrays["test"]
    return X, y, X_val, y_val


def _liblinear(X: np.ndarray, y: np.ndarray, C: float, **params: object) -> np.ndarray:
    model = LinearSVC(C=C, tol=1e-10, max_iter=100_000, dual=False, **params).fit(X, y)  # type: ignore[arg-type]
    coef = model.coef_.T
    if model.fit_intercept:
        coef = np.vstack([coef, model.intercept_[None, :] / model.intercept_scaling])
    return coef


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize(("fit_intercept", "scaling"), [(True, 1.0), (True, 3.0), (False, 1.0)])
def test_optimum_matches_liblinear(n_classes: int, fit_intercept: bool, scaling: float) -> None:
    X, y, X_val, _ = _data(n_classes=n_classes)
    classes = np.unique(y)
    Cs = [0.001, 0.1, 10.0]
    bias = scaling if fit_intercept else 0.0
    solutions = l2svm.solve_path(X, l2svm.one_vs_rest_targets(y, classes), Cs, bias=bias)
    for C, W in zip(Cs, solutions):
        reference = _liblinear(X, y, C, fit_intercept=fit_intercept, intercept_scaling=scaling)
        assert W.shape == reference.shape
        np.testing.assert_allclose(W, reference, rtol=1e-4, atol=1e-6 * np.abs(reference).max())
        model = LinearSVC(C=C, tol=1e-10, max_iter=100_000, dual=False, fit_intercept=fit_intercept, intercept_scaling=scaling).fit(X, y)
        np.testing.assert_array_equal(l2svm.predict_ovr(l2svm.scores(X_val, W, bias), classes), model.predict(X_val))


def test_path_order_and_warm_starts_do_not_change_the_optimum() -> None:
    X, y, _, _ = _data(separation=0.5)
    targets = l2svm.one_vs_rest_targets(y, np.unique(y))
    path = l2svm.solve_path(X, targets, [10.0, 0.01, 1.0])
    for C, W in zip([10.0, 0.01, 1.0], path):
        (alone,) = l2svm.solve_path(X, targets, [C])
        np.testing.assert_allclose(W, alone, rtol=1e-4, atol=1e-7)


def test_more_features_than_samples() -> None:
    X, y, X_val, _ = _data(n=60, dim=150, separation=0.3)
    classes = np.unique(y)
    (W,) = l2svm.solve_path(X, l2svm.one_vs_rest_targets(y, classes), [0.5])
    np.testing.assert_allclose(W, _liblinear(X, y, 0.5), rtol=1e-4, atol=1e-6)


def test_exact_step_minimises_the_line() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 5))
    y = np.where(rng.random(200) < 0.5, 1.0, -1.0)
    w, d, C = rng.normal(size=5), rng.normal(size=5), 0.7

    def objective(t: float) -> float:
        return 0.5 * np.sum((w + t * d) ** 2) + C * np.sum(np.maximum(0.0, 1 - y * (X @ (w + t * d))) ** 2)

    if objective(1e-6) > objective(0.0):
        d = -d
    step = l2svm.exact_step(w, d, 1 - y * (X @ w), y * (X @ d), C)
    grid = np.linspace(0, 4 * max(step, 1.0), 20001)
    best = grid[np.argmin([objective(t) for t in grid])]
    assert step == pytest.approx(best, abs=grid[1] * 2)
    assert l2svm.exact_step(w, -d, 1 - y * (X @ w), y * (X @ -d), C) == 0.0  # not a descent direction


def test_gram_routes_agree() -> None:
    X, y, _, _ = _data(n=300, dim=6)
    problem = l2svm.SquaredHingeProblem(X, l2svm.one_vs_rest_targets(y, np.unique(y)), 1.0)
    cache = l2svm._GramCache(problem)
    state = l2svm._ClassState()
    rng = np.random.default_rng(0)
    expected = None
    for fraction in (1.0, 0.9, 0.2, 0.25, 0.95):
        mask = rng.random(len(X)) < fraction
        got = cache.hessian_block(state, mask).copy()
        augmented = np.hstack([X[mask], np.ones((mask.sum(), 1), dtype=np.float32)]).astype(np.float64)
        expected = augmented.T @ augmented
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-2)


def test_without_kept_hessian_blocks_the_optimum_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many classes x many features: per-class blocks are not kept (memory), same answer."""
    X, y, _, _ = _data(separation=0.5)
    targets = l2svm.one_vs_rest_targets(y, np.unique(y))
    kept = l2svm.solve_path(X, targets, [0.01, 1.0])
    monkeypatch.setattr(l2svm, "GRAM_CACHE_BYTES", 0)
    for with_cache, without in zip(kept, l2svm.solve_path(X, targets, [0.01, 1.0])):
        np.testing.assert_allclose(without, with_cache, rtol=1e-4, atol=1e-7)


def test_fewer_rows_than_features_reaches_liblinear_s_optimum_along_the_path() -> None:
    """Solved in the rows' space (Woodbury): the optimum at small and large C, with a scaled bias."""
    X, y, _, _ = _data(n=50, dim=90, separation=0.3)
    targets = l2svm.one_vs_rest_targets(y, np.unique(y))
    Cs = [0.001, 0.1, 10.0]
    for C, W in zip(Cs, l2svm.solve_path(X, targets, Cs, bias=2.0)):
        reference = _liblinear(X, y, C, intercept_scaling=2.0)
        np.testing.assert_allclose(W, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())

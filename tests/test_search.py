"""Exactness: featx's shared-work grid search gives GridSearchCV's scores, fold for fold."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from featx.fitting.classifiers import build_pipeline, get_classifier
from featx.fitting.search import (
    best_index,
    cross_validate_grid,
    grid_points,
    neighbour_vote,
    neighbour_weights,
    search_knn,
    search_linearsvc_path,
    stratified_folds,
)
from tests.conftest import make_features

# overlapping classes, so that accuracies are informative (roughly 0.6-0.9), not all 1.0
DATA = make_features(n_train=300, n_test=10, dim=20, n_classes=4, separation=0.6, seed=1)["train"]


def _ours(
    pipeline: Pipeline, searcher: Any, X: np.ndarray, y: np.ndarray, grid: Mapping[str, Sequence[Any]], folds: list, n_jobs: int = 1
) -> np.ndarray:
    results = cross_validate_grid(pipeline, searcher, X, y, grid_points(grid), folds, n_jobs=n_jobs)
    return np.stack([r.scores for r in results], axis=1)


def _reference(pipeline: Pipeline, X: np.ndarray, y: np.ndarray, grid: Mapping[str, Sequence[Any]], folds: list) -> tuple[np.ndarray, int]:
    search = GridSearchCV(pipeline, {f"clf__{k}": list(v) for k, v in grid.items()}, cv=folds, refit=False)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):  # fast on 2 shared cores
        warnings.simplefilter("ignore")
        search.fit(X, y)
    scores = np.stack([search.cv_results_[f"split{i}_test_score"] for i in range(len(folds))], axis=1)
    return scores, int(search.best_index_)


@pytest.mark.parametrize("clf", ["linearsvc", "logreg", "knn"])
@pytest.mark.parametrize(("scale", "pca"), [("standard", None), ("l2", 5), ("none", None)])
def test_same_fold_scores_as_gridsearchcv(clf: str, scale: str, pca: int | None) -> None:
    X, y = DATA
    spec = get_classifier(clf)
    grid = spec.resolve_grid({"C": [0.001, 0.01, 0.1, 1, 10]} if clf != "knn" else None)
    pipeline = build_pipeline(spec, scale=scale, pca=pca, seed=0)
    folds = stratified_folds(y, 5, seed=0)
    ours = _ours(pipeline, spec.searcher, X, y, grid, folds)
    reference, reference_best = _reference(pipeline, X, y, grid, folds)
    assert 0.3 < reference.mean() < 0.97  # informative, not saturated
    np.testing.assert_array_equal(ours, reference)
    assert best_index(ours.mean(axis=1)) == reference_best


@pytest.mark.parametrize("clf", ["linearsvc", "knn"])
def test_two_classes_and_parallel_folds(clf: str) -> None:
    arrays = make_features(n_train=200, n_test=10, dim=10, n_classes=2, separation=0.4, seed=5)
    X, y = arrays["train"]
    spec = get_classifier(clf)
    grid = spec.resolve_grid({"n_neighbors": [1, 4, 9], "metric": ["euclidean", "manhattan"]} if clf == "knn" else None)
    pipeline = build_pipeline(spec, scale="standard", pca=None, seed=0)
    folds = stratified_folds(y, 4, seed=3)
    reference, _ = _reference(pipeline, X, y, grid, folds)
    np.testing.assert_array_equal(_ours(pipeline, spec.searcher, X, y, grid, folds, n_jobs=2), reference)


def test_knn_zero_distances_and_vote_ties_match() -> None:
    """Exact duplicates (a zero distance takes the whole distance-weighted vote) and even-k
    vote ties (to the lowest class) are replayed exactly. Ties in *distance* at the k-th
    neighbour between points of different classes are the one documented exception: the
    search at the largest k may keep another of the tied points."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    X = np.vstack([X, X[:40]])  # 40 points twice (same label): each has a twin at distance 0
    y = rng.integers(0, 3, size=120)
    y = np.concatenate([y, y[:40]])
    grid = {"n_neighbors": [1, 2, 4, 6], "weights": ["uniform", "distance"], "metric": ["euclidean", "manhattan"]}
    pipeline = Pipeline([("scale", "passthrough"), ("clf", KNeighborsClassifier(algorithm="brute"))])
    folds = stratified_folds(y, 3, seed=0)
    ours = _ours(pipeline, search_knn, X, y, grid, folds)
    np.testing.assert_array_equal(ours, _reference(pipeline, X, y, grid, folds)[0])


def test_linearsvc_points_outside_the_fast_objective_fall_back_to_liblinear() -> None:
    X, y = DATA
    spec = get_classifier("linearsvc")
    pipeline = build_pipeline(spec, scale="standard", pca=None, seed=0)
    pipeline.set_params(clf__loss="hinge", clf__dual=True)
    folds = stratified_folds(y, 3, seed=0)
    grid = {"C": [0.01, 1.0]}
    np.testing.assert_array_equal(_ours(pipeline, search_linearsvc_path, X, y, grid, folds), _reference(pipeline, X, y, grid, folds)[0])


def test_linearsvc_with_fewer_rows_than_features_is_solved_in_the_rows_space(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fewer rows than features: the Newton solver (not liblinear) gives GridSearchCV's fold scores."""
    from sklearn.svm import LinearSVC

    from featx.fitting.solvers import l2svm

    arrays = make_features(n_train=60, n_test=10, dim=80, n_classes=3, separation=0.3, seed=2)
    X, y = arrays["train"]
    spec = get_classifier("linearsvc")
    pipeline = build_pipeline(spec, scale="standard", pca=None, seed=0)
    folds = stratified_folds(y, 3, seed=0)
    grid = {"C": [0.001, 0.01, 0.1, 1.0]}
    reference = _reference(pipeline, X, y, grid, folds)[0]
    kernels = []
    solve = l2svm._GramCache.newton_direction

    def recording(self: l2svm._GramCache, *args: object, **kwargs: object) -> np.ndarray:
        kernels.append(self.in_row_space)
        return solve(self, *args, **kwargs)  # type: ignore[arg-type]

    def liblinear(*args: object, **kwargs: object) -> None:
        raise AssertionError("liblinear is not needed for LinearSVC's default objective")

    monkeypatch.setattr(l2svm._GramCache, "newton_direction", recording)
    monkeypatch.setattr(LinearSVC, "fit", liblinear)
    np.testing.assert_array_equal(_ours(pipeline, search_linearsvc_path, X, y, grid, folds), reference)
    assert kernels and all(kernels)


def test_vote_ties_go_to_the_lowest_class_and_zero_distance_wins() -> None:
    labels = np.array([[2, 1, 0, 2, 1]])
    assert neighbour_vote(labels[:, :4], neighbour_weights(np.ones((1, 4)), "uniform"), 3)[0] == 2
    assert neighbour_vote(labels[:, :2], neighbour_weights(np.ones((1, 2)), "uniform"), 3)[0] == 1
    distances = np.array([[0.0, 0.0, 1.0, 2.0, 3.0]])
    weights = neighbour_weights(distances, "distance")
    np.testing.assert_array_equal(weights, [[1.0, 1.0, 0.0, 0.0, 0.0]])
    assert neighbour_vote(labels, weights, 3)[0] == 1


def test_folds_are_stratified_and_seeded() -> None:
    _, y = DATA
    folds = stratified_folds(y, 5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, stratified_folds(y, 5, seed=0)))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, stratified_folds(y, 5, seed=1)))
    covered = np.sort(np.concatenate([val for _, val in folds]))
    np.testing.assert_array_equal(covered, np.arange(len(y)))
    for _, val in folds:
        assert np.bincount(y[val]).min() >= np.bincount(y).min() // 5

"""Exact, fast cross-validated grid search over a scikit-learn Pipeline.

The scores are those of ``GridSearchCV(pipeline, grid, cv=folds)`` with accuracy scoring,
point for point and fold for fold; the work is shared where the maths allows:

* the pipeline's transformers (scaling, PCA) are fitted once per fold, and every grid
  point of that fold uses the same transformed matrices (they are deterministic, so
  GridSearchCV's refits per grid point compute the same numbers);
* a *searcher* scores all grid points of one fold at once and shares what it can:
  :func:`search_knn` does one neighbour search per fold at the largest k and replays
  scikit-learn's vote for every k and weighting; :func:`search_linearsvc_path` solves
  LinearSVC's own objective (see :mod:`featx.fitting.solvers.l2svm`) for every C with dense float32
  Newton steps, warm-started along the C path; :func:`search_each` fits each point as
  GridSearchCV does (logistic regression uses it: warm starts along the C path were
  measured 26% faster but changed up to 35 of 4,000 validation predictions at C=1,
  because lbfgs at its default tolerance stops short of the optimum, at a point that
  depends on where it started);
* folds run in parallel with joblib, each with single-threaded BLAS; the feature matrix
  is shared with the workers (memory-mapped), never copied per grid point. Whatever
  joblib backend is active runs them: a caller that puts the work on a Dask cluster
  wraps the call in ``joblib.parallel_config(backend="dask")`` (:mod:`featx.cluster`
  does), and joblib sends the feature matrix to the cluster once per search.

Every function here takes arrays and returns numbers; nothing reads or writes files, and
nothing here knows about a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from featx.fitting.metrics import accuracy

if TYPE_CHECKING:  # scikit-learn is imported when a search runs, not to list the classifiers
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

Point = Mapping[str, Any]
Fold = tuple[np.ndarray, np.ndarray]
#: ``searcher(estimator, X_train, y_train, X_val, y_val, points) -> accuracy per point``
Searcher = Callable[["BaseEstimator", np.ndarray, np.ndarray, np.ndarray, np.ndarray, Sequence[Point]], np.ndarray]


# --------------------------------------------------------------------------- folds and points


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The grid points in GridSearchCV's order (``ParameterGrid``: keys sorted, last fastest)."""
    from sklearn.model_selection import ParameterGrid

    return [dict(point) for point in ParameterGrid({name: list(values) for name, values in grid.items()})]


def random_points(grid: Mapping[str, Sequence[Any]], n_iter: int, seed: int) -> list[dict[str, Any]]:
    """``n_iter`` points drawn over the ranges of a grid, seeded (scikit-learn's RandomizedSearchCV idea).

    A float parameter of several values is drawn log-uniformly between its smallest and
    largest value (uniformly when the smallest is not positive); a whole-number one the
    same way, rounded (never outside the range); names and single values are drawn
    uniformly from the values given. Parameters are drawn in sorted name order, so the
    same grid, ``n_iter`` and seed give the same points.

    Args:
        grid: parameter -> values (the ranges).
        n_iter: how many points.
        seed: seeds the draws.

    Returns:
        The points, in draw order.
    """
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for name in sorted(grid):
        values = list(grid[name])
        numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(set(numeric)) < 2 or len(numeric) != len(values):
            columns[name] = [values[i] for i in rng.integers(len(values), size=n_iter)]
            continue
        low, high = float(min(numeric)), float(max(numeric))
        draws = np.exp(rng.uniform(np.log(low), np.log(high), size=n_iter)) if low > 0 else rng.uniform(low, high, size=n_iter)
        if all(isinstance(v, int) for v in numeric):
            columns[name] = [int(min(high, max(low, round(float(d))))) for d in draws]
        else:
            columns[name] = [float(min(high, max(low, float(f"{d:.6g}")))) for d in draws]
    return [{name: columns[name][i] for name in columns} for i in range(n_iter)]


def search_points(grid: Mapping[str, Sequence[Any]], *, search: str, n_iter: int, seed: int) -> list[dict[str, Any]]:
    """The points a search scores: the whole grid, or :func:`random_points` over its ranges."""
    return random_points(grid, n_iter, seed) if search == "random" else grid_points(grid)


def stratified_folds(y: np.ndarray, n_splits: int, seed: int) -> list[Fold]:
    """``StratifiedKFold(n_splits, shuffle=True, random_state=seed)`` folds of ``y`` as index pairs."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(train, val) for train, val in splitter.split(np.zeros((len(y), 1)), y)]


def best_index(mean_scores: np.ndarray) -> int:
    """The grid point GridSearchCV picks: the first of those with the highest mean score."""
    return int(np.argmax(np.asarray(mean_scores)))


def group_points(points: Sequence[Point], path_params: Sequence[str]) -> dict[tuple[tuple[str, Any], ...], list[int]]:
    """Indices of the points that differ only in ``path_params``, keyed by the other params."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    for index, point in enumerate(points):
        key = tuple(sorted((name, value) for name, value in point.items() if name not in path_params))
        groups.setdefault(key, []).append(index)
    return groups


# --------------------------------------------------------------------------- searchers


def search_each(
    estimator: BaseEstimator, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, points: Sequence[Point]
) -> np.ndarray:
    """One fit per grid point (shares only the fold's transformed data).

    Returns:
        ``(n_points,)`` validation accuracies.
    """
    from sklearn.base import clone

    scores = np.empty(len(points))
    for index, point in enumerate(points):
        model = clone(estimator).set_params(**point).fit(X_train, y_train)
        scores[index] = accuracy(y_val, model.predict(X_val))
    return scores


def neighbour_weights(distances: np.ndarray, weights: str) -> np.ndarray:
    """Vote weights of neighbours as ``KNeighborsClassifier`` computes them.

    ``uniform``: all ones. ``distance``: ``1 / d``; a query with a neighbour at distance
    0 gives weight 1 to its zero-distance neighbours and 0 to the others.

    Args:
        distances: ``(n_queries, k)`` neighbour distances, nearest first.
        weights: ``"uniform"`` or ``"distance"``.

    Returns:
        ``(n_queries, k)`` float64 weights.
    """
    if weights == "uniform":
        return np.ones(distances.shape, dtype=np.float64)
    if weights != "distance":
        raise ValueError(f"unsupported neighbour weighting {weights!r}")
    with np.errstate(divide="ignore"):
        inverse = 1.0 / distances
    infinite = np.isinf(inverse)
    rows = infinite.any(axis=1)
    inverse[rows] = infinite[rows]
    return inverse.astype(np.float64)


def neighbour_votes(neighbour_labels: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's summed neighbour weight: ``(n_queries, n_classes)`` float64.

    Sums in the same order and precision as scikit-learn's ``weighted_mode``, so a
    near-tie resolves the same way. Normalised per row, they are ``predict_proba``.

    Args:
        neighbour_labels: ``(n_queries, k)`` class indices of the neighbours.
        weights: ``(n_queries, k)`` float64 weights.
        n_classes: number of classes.
    """
    votes = np.empty((neighbour_labels.shape[0], n_classes))
    for c in range(n_classes):
        votes[:, c] = np.sum(np.where(neighbour_labels == c, weights, 0.0), axis=1)
    return votes


def neighbour_vote(neighbour_labels: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """The class with the largest summed weight (:func:`neighbour_votes`), ties to the
    lowest class index: ``(n_queries,)`` class indices."""
    return np.argmax(neighbour_votes(neighbour_labels, weights, n_classes), axis=1)


def search_knn(
    estimator: BaseEstimator, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, points: Sequence[Point]
) -> np.ndarray:
    """k-NN: one neighbour search at the largest k per metric serves every k and weighting.

    Args:
        estimator: a ``KNeighborsClassifier`` with the fixed parameters.
        points: grid points over ``n_neighbors``, ``weights`` and any other parameter
            (each distinct combination of the others gets its own search).

    Returns:
        ``(n_points,)`` validation accuracies.
    """
    from sklearn.base import clone

    scores = np.empty(len(points))
    for key, indices in group_points(points, ("n_neighbors", "weights")).items():
        params = estimator.get_params()
        k_max = max(int(points[i].get("n_neighbors", params["n_neighbors"])) for i in indices)
        model = clone(estimator).set_params(**dict(key), n_neighbors=k_max, weights="uniform").fit(X_train, y_train)
        distances, neighbours = model.kneighbors(X_val)
        neighbour_labels = np.searchsorted(model.classes_, y_train)[neighbours]
        for i in indices:
            k = int(points[i].get("n_neighbors", params["n_neighbors"]))
            weighting = points[i].get("weights", params["weights"])
            votes = neighbour_vote(neighbour_labels[:, :k], neighbour_weights(distances[:, :k], weighting), len(model.classes_))
            scores[i] = accuracy(y_val, model.classes_[votes])
    return scores


#: LinearSVC parameters that define its objective, and the values our solver handles.
_L2SVM_OBJECTIVE = {"penalty": "l2", "loss": "squared_hinge", "multi_class": "ovr", "class_weight": None}


def search_linearsvc_path(
    estimator: BaseEstimator, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, points: Sequence[Point]
) -> np.ndarray:
    """LinearSVC: the exact optimum of its objective for every C, by warm-started Newton steps.

    Points whose parameters change the objective to one :mod:`featx.fitting.solvers.l2svm` does not solve
    (another loss or penalty, class weights, Crammer-Singer) are fitted with liblinear. With
    fewer rows than features the solver works in the rows' space (a kernel of rows x rows),
    where liblinear's dual coordinate descent needs many passes on correlated features.

    Returns:
        ``(n_points,)`` validation accuracies.
    """
    from featx.fitting.solvers import l2svm

    scores = np.empty(len(points))
    classes = np.unique(y_train)
    targets = l2svm.one_vs_rest_targets(y_train, classes)
    X_train = np.ascontiguousarray(X_train, dtype=np.float32)
    for key, indices in group_points(points, ("C",)).items():
        params = {**estimator.get_params(), **dict(key)}
        if any(params.get(name) != value for name, value in _L2SVM_OBJECTIVE.items()) or len(classes) < 2:
            scores[indices] = search_each(estimator, X_train, y_train, X_val, y_val, [points[i] for i in indices])
            continue
        bias = float(params["intercept_scaling"]) if params["fit_intercept"] else 0.0
        Cs = [float(points[i].get("C", params["C"])) for i in indices]
        for i, W in zip(indices, l2svm.solve_path(X_train, targets, Cs, bias=bias)):
            scores[i] = accuracy(y_val, l2svm.predict_ovr(l2svm.scores(X_val, W, bias), classes))
    return scores


# --------------------------------------------------------------------------- folds in parallel


@dataclass(frozen=True)
class FoldResult:
    """What one fold job returns: accuracy per grid point, its time, and warnings raised."""

    index: int
    scores: np.ndarray
    seconds: float
    warnings: tuple[str, ...]


def transform_fold(prefix: Pipeline | None, X: np.ndarray, y: np.ndarray, fold: Fold) -> tuple[np.ndarray, np.ndarray]:
    """Fit the pipeline's transformers on the fold's training rows; transform both parts.

    ``fit_transform`` on the training rows, ``transform`` on the validation rows, exactly
    as ``Pipeline.fit`` and ``Pipeline.predict`` do. The fold's rows are copied once (the
    row selection); transformers then work in place on that copy.

    Returns:
        ``(X_train (n_train, d'), X_val (n_val, d'))``.
    """
    from sklearn.base import clone

    train, val = fold
    X_train, X_val = X[train], X[val]
    if prefix is None:
        return X_train, X_val
    prefix = clone(prefix)
    for _, step in prefix.steps:
        if step != "passthrough" and "copy" in step.get_params():
            step.set_params(copy=False)  # the fold's rows are already our own copy
    return prefix.fit_transform(X_train, y[train]), prefix.transform(X_val)


@contextlib.contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """Collect the warnings a fit raises (convergence, numerical) as distinct one-line messages.

    Worker processes cannot show warnings to the user, so they are returned as text and
    logged (and recorded) by the caller.
    """
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        for category in (UserWarning, RuntimeWarning):  # ConvergenceWarning is a UserWarning
            warnings.simplefilter("always", category)
        yield messages
    lines = (f"{w.category.__name__}: {' '.join(str(w.message).split())}" for w in caught)
    messages.extend(dict.fromkeys(lines))


def score_fold(
    index: int, pipeline: Pipeline, searcher: Searcher, X: np.ndarray, y: np.ndarray, fold: Fold, points: Sequence[Point]
) -> FoldResult:
    """Score every grid point on one fold (runs in a joblib worker)."""
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    # BLAS single-threaded: parallelism is across folds (see RESULTS.md: two OpenBLAS
    # threads made lbfgs 3x slower than one on the 2-core machine this was measured on)
    with collect_warnings() as messages, threadpool_limits(limits=1, user_api="blas"):
        prefix = pipeline[:-1] if len(pipeline.steps) > 1 else None
        X_train, X_val = transform_fold(prefix, X, y, fold)
        scores = searcher(pipeline.steps[-1][1], X_train, y[fold[0]], X_val, y[fold[1]], points)
    return FoldResult(
        index=index, scores=np.asarray(scores, dtype=np.float64), seconds=time.perf_counter() - start, warnings=tuple(messages)
    )


def cross_validate_grid(
    pipeline: Pipeline,
    searcher: Searcher,
    X: np.ndarray,
    y: np.ndarray,
    points: Sequence[Point],
    folds: Sequence[Fold],
    *,
    n_jobs: int = -1,
    on_fold: Callable[[FoldResult], None] | None = None,
) -> list[FoldResult]:
    """Score every grid point on every fold, folds in parallel (joblib, its active backend).

    Args:
        pipeline: transformers then the estimator (unfitted; its last step's params are
            the fixed ones, each grid point overrides some of them).
        searcher: scores all points of one fold at once (see the ``search_*`` functions).
        X: ``(n_samples, n_features)`` float32 training features (all folds).
        y: ``(n_samples,)`` labels.
        points: estimator parameters of each grid point.
        folds: ``(train_indices, val_indices)`` pairs.
        n_jobs: joblib workers (-1: all the backend has); never more than the folds.
        on_fold: called in the parent as each fold finishes (progress).

    Returns:
        One :class:`FoldResult` per fold, in fold order.
    """
    from joblib import Parallel, delayed

    workers = fold_workers(n_jobs, len(folds))
    jobs = (delayed(score_fold)(index, pipeline, searcher, X, y, fold, points) for index, fold in enumerate(folds))
    results: list[FoldResult] = []
    # one fold per task, at most `workers` in flight: also a cap on a Dask cluster (joblib backend "dask")
    for result in Parallel(n_jobs=workers, batch_size=1, pre_dispatch="n_jobs", return_as="generator_unordered")(jobs):
        if on_fold is not None:
            on_fold(result)
        results.append(result)
    return sorted(results, key=lambda r: r.index)


def fold_workers(n_jobs: int, n_folds: int) -> int:
    """How many folds run at once: ``n_jobs`` (-1: every core of the active joblib
    backend, e.g. of a Dask cluster), never more than the folds."""
    from joblib import effective_n_jobs

    return max(1, min(effective_n_jobs(n_jobs), n_folds))

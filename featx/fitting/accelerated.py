"""The grid search on torch solvers: every fold and grid point of a classifier in one solve.

``--solver torch`` (and ``auto`` where it is faster) replaces the per-fold joblib search
(:mod:`featx.fitting.search`) with batched solves on the chosen device:

* logistic regression and LinearSVC: for each C, in ascending order and warm-started
  from the previous C, one batch of problems: every fold's training rows
  (:mod:`featx.fitting.solvers.linear`). Without PCA the folds share one matrix: the
  features centred and scaled once, each fold's own ``StandardScaler`` (or none, or the
  rows' L2 normalisation) becoming a per-feature weight of its penalty, so one matrix
  product per block of rows serves every problem. With PCA, each fold is transformed by
  its own scaler and PCA (scikit-learn's, fitted on its training rows) and solved alone.
  Then the whole training split is solved at the chosen C alone (warm-started from the
  folds' solutions there): that solution is the model, no refit. The saved model is the
  scikit-learn Pipeline with the solution's ``coef_`` and ``intercept_`` set, so it loads
  and predicts without torch.
* k-NN: one neighbour search per fold and metric at the largest k
  (:mod:`featx.fitting.solvers.neighbors`), every k and weighting replayed from it with
  scikit-learn's vote; the model is ``KNeighborsClassifier`` fitted as usual.

The objectives are scikit-learn's and strictly convex: the solutions reach their optimum
at least as closely as scikit-learn's own solvers do (tested by objective value).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from featx.core.errors import ConfigError
from featx.fitting.classifiers import Scale, build_pipeline, make_scaler
from featx.fitting.metrics import accuracy
from featx.fitting.search import Fold, Point, best_index, neighbour_vote, neighbour_votes, neighbour_weights

if TYPE_CHECKING:
    import torch
    from sklearn.pipeline import Pipeline

    from featx.fitting.config import FitConfig
    from featx.fitting.solvers.linear import Affine, Loss

log = logging.getLogger(__name__)

#: classifiers the torch solvers serve, and the estimator parameters their objective assumes
#: (each: the values that give it; scikit-learn 1.8 renamed LogisticRegression's L2 default)
LINEAR_OBJECTIVES: dict[str, tuple[Loss, dict[str, tuple[Any, ...]]]] = {
    "logreg": (
        "logistic",
        {
            "penalty": ("l2", "deprecated"),
            "l1_ratio": (None, 0, 0.0),
            "fit_intercept": (True,),
            "class_weight": (None,),
            "multi_class": ("auto", "multinomial", "deprecated"),
        },
    ),
    "linearsvc": (
        "squared_hinge",
        {"penalty": ("l2",), "loss": ("squared_hinge",), "multi_class": ("ovr",), "fit_intercept": (True,), "class_weight": (None,)},
    ),
}
SUPPORTED = (*LINEAR_OBJECTIVES, "knn")
#: what ``solver=auto`` may run on the torch solvers, per device type: everything they serve;
#: on a CPU only large problems, and for the linear classifiers only with more rows than
#: features (:func:`auto_uses_torch`)
AUTO_TORCH: dict[str, frozenset[str]] = {"cuda": frozenset(SUPPORTED), "cpu": frozenset(SUPPORTED)}
#: a CPU problem below this many training values (rows x features) stays with scikit-learn:
#: both take seconds there, and the torch solvers' fixed costs do not amortise
CPU_TORCH_MIN_VALUES = 10_000_000


def auto_uses_torch(clf: str, device_type: str, n_rows: int, n_features: int) -> bool:
    """Whether ``solver=auto`` runs ``clf`` on the torch solvers (benchmarks/RESULTS.md).

    On CUDA every classifier they serve. On a CPU every one when the training split has
    ``CPU_TORCH_MIN_VALUES`` values: there one batched solve beats the per-fold lbfgs and
    liblinear's refit, and k-NN's float32 searches (one of them scoring the test split)
    beat scikit-learn's; and the linear ones only with at least as many rows as features:
    few rows of many features (the demo's 1,200 x 1,280) converge slowly in the torch
    solvers and take seconds with scikit-learn.
    """
    if clf not in AUTO_TORCH.get(device_type, frozenset()):
        return False
    if device_type != "cpu":
        return True
    return n_rows * n_features >= CPU_TORCH_MIN_VALUES and (clf == "knn" or n_rows >= n_features)


@dataclass(frozen=True)
class AcceleratedSearch:
    """The outcome of a batched search.

    Attributes:
        fold_scores: ``(n_points, n_folds)`` validation accuracy.
        model: the Pipeline at the chosen point, fitted on the whole training split.
        seconds: wall time of the cross-validation.
        model_seconds: wall time of the model at the chosen point (the whole split's solve).
        info: how it ran: solver, device, iterations, final gradient, streamed, for the record.
        test_votes: k-NN with test rows given: ``(n_test, n_classes)`` the chosen point's
            summed neighbour weights per class of ``model.classes_``, from the search on the
            device (``predict`` is their argmax, ``predict_proba`` them normalised); None
            otherwise.
        test_seconds: wall time of ``test_votes``.
    """

    fold_scores: np.ndarray
    model: Any
    seconds: float
    model_seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    test_votes: np.ndarray | None = None
    test_seconds: float = 0.0


def unsupported(config: FitConfig) -> str | None:
    """Why the torch solvers cannot serve this config (its classifier or grid), or None."""
    if config.clf not in SUPPORTED:
        return f"the torch solvers serve {', '.join(SUPPORTED)}, not {config.clf}"
    if config.clf in LINEAR_OBJECTIVES:
        _, objective = LINEAR_OBJECTIVES[config.clf]
        params = config.spec.make_estimator(config.seed).get_params()
        swept = [name for name in config.grid if name != "C"]
        if swept:
            return f"the torch solvers sweep C only, not {', '.join(swept)}"
        changed = [name for name, values in objective.items() if name in params and params[name] not in values]
        if changed:
            return f"the torch solvers solve the default {config.clf} objective, not with {', '.join(changed)} changed"
    elif any(metric not in ("euclidean", "cosine", "manhattan") for metric in config.grid.get("metric", ())):
        return "the torch k-NN search computes euclidean, cosine and manhattan distances only"
    elif swept := sorted(set(config.grid) - {p.name for p in config.spec.grid}):
        return f"the torch k-NN search sweeps k, the vote and the metric only, not {', '.join(swept)}"
    return None


def search(
    config: FitConfig,
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[Fold],
    points: Sequence[Point],
    *,
    device: str,
    X_test: np.ndarray | None = None,
) -> AcceleratedSearch:
    """Cross-validate every grid point of ``config`` on the device; fit the chosen point.

    Args:
        config: the fit (its classifier must be served: see :func:`unsupported`).
        X: ``(n_samples, n_features)`` float32 training features; y: ``(n_samples,)`` labels.
        folds: ``(train_indices, val_indices)`` pairs.
        points: the grid points, in GridSearchCV's order.
        device: where to solve.
        X_test: test rows whose k-NN votes to compute on the device as well (a fitted
            ``KNeighborsClassifier`` would search them again with scikit-learn on the CPU);
            ignored by the linear models, whose predictions are one cheap product.

    Returns:
        The fold scores, the fitted Pipeline at the chosen point, and how it ran.

    Raises:
        ConfigError: the torch solvers cannot serve this config.
    """
    import torch

    from featx.core.devices import describe_device

    problem = unsupported(config)
    if problem:
        raise ConfigError(f"{problem}; use solver sklearn", field="solver")
    from featx.fitting.solvers.linear import cpu_threads

    where = torch.device(device)
    clock = _Clock()
    votes, test_seconds = None, 0.0
    with cpu_threads(where, X.size):
        if config.clf == "knn":
            scores, model, info = _knn(config, X, y, folds, points, device=where, clock=clock)
            if X_test is not None:
                started = time.perf_counter()
                votes = _knn_votes(model, X, y, X_test, device=where)
                test_seconds = time.perf_counter() - started
        else:
            scores, model, info = _linear(config, X, y, folds, points, device=where, clock=clock)
    return AcceleratedSearch(
        scores,
        model,
        clock.search_seconds,
        clock.model_seconds,
        {"solver": "torch", "device": describe_device(where), **info},
        test_votes=votes,
        test_seconds=test_seconds,
    )


class _Clock:
    """Splits a search's wall time into the cross-validation and the final model."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.search_seconds = 0.0
        self.model_seconds = 0.0

    def searched(self) -> None:
        """The cross-validation ends here; what follows is the final model's."""
        self.search_seconds = time.perf_counter() - self.started

    def modelled(self) -> None:
        """The final model is ready."""
        self.model_seconds = time.perf_counter() - self.started - self.search_seconds


# --------------------------------------------------------------------------- linear models


@dataclass(frozen=True)
class _ProblemSet:
    """Problems solved in one batch: they share the rows of ``matrix``.

    Attributes:
        matrix: ``(rows, d)`` float32, centred and scaled once for all of them, its rows
            ordered by fold (each fold's held-out rows together: see
            :class:`featx.fitting.solvers.linear.Workspace`'s runs).
        targets: ``(rows,)`` class codes ``0 .. n_classes-1``.
        masks: ``(n_problems, rows)`` bool, each problem's rows.
        affines: each problem's own scaling of ``matrix``.
        validation: per problem, ``(fold index, queries in the problem's own coordinates,
            their class codes)``.
        whole: the whole training split's scaling of ``matrix`` (None: its rows differ, see
            :func:`_whole_split`).
    """

    matrix: np.ndarray
    targets: np.ndarray
    masks: np.ndarray
    affines: list[Affine]
    validation: list[tuple[int, np.ndarray, np.ndarray]]
    whole: Affine | None


def _linear(
    config: FitConfig, X: np.ndarray, y: np.ndarray, folds: Sequence[Fold], points: Sequence[Point], *, device: torch.device, clock: _Clock
) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Every fold along the C path, then the whole training split at the chosen C only,
    warm-started from the folds' solutions there."""
    from featx.fitting.solvers import linear

    loss, _ = LINEAR_OBJECTIVES[config.clf]
    bias = float(config.spec.make_estimator(config.seed).get_params().get("intercept_scaling", 1.0))
    classes, codes = np.unique(y, return_inverse=True)
    Cs = [float(point["C"]) for point in points]
    scores = np.zeros((len(points), len(folds)))
    solutions: list[tuple[_ProblemSet, linear.Workspace, list[linear.Solution]]] = []
    iterations, gradients, streamed = 0, [], False
    gaps: list[float] = []
    for problems in _problem_sets(config, X, codes, folds):
        work = linear.Workspace(problems.matrix, device)
        path = linear.solve_path(work, problems.targets, problems.masks, problems.affines, Cs, loss=loss, intercept_scaling=bias)
        for index, solution in enumerate(path):
            iterations += int(solution.iterations.sum())
            gradients.append(float(solution.gradient.max()))
            gaps.extend(solution.gap.tolist() if solution.gap is not None else [])
            streamed |= solution.streamed
            for slot, (fold, queries, truth) in enumerate(problems.validation):
                scores[index, fold] = accuracy(
                    truth, _predict(queries @ solution.coef[slot].T + solution.intercept[slot], np.arange(len(classes)))
                )
        solutions.append((problems, work, path))
    best = best_index(scores.mean(axis=1))
    clock.searched()
    final = _whole_split(config, X, codes, solutions, Cs, best, loss=loss, intercept_scaling=bias, device=device)
    iterations += int(final.iterations.sum())
    gradients.append(float(final.gradient.max()))
    gaps.extend(final.gap.tolist() if final.gap is not None else [])
    model = _linear_model(config, X, y, classes, points[best], final.coef[0], final.intercept[0])
    clock.modelled()
    info: dict[str, Any] = {"iterations": iterations, "max_gradient": max(gradients, default=0.0), "streamed": streamed or final.streamed}
    certified = [gap for gap in gaps if np.isfinite(gap)]
    if certified:
        info["max_duality_gap"] = max(certified)
    if final.gap is not None and np.isfinite(final.gap[0]):
        info["model_duality_gap"] = float(final.gap[0])  # the saved model's (the largest is often a large C's, loose)
    return scores, model, info


def _whole_split(
    config: FitConfig,
    X: np.ndarray,
    codes: np.ndarray,
    solutions: list[tuple[_ProblemSet, Any, list[Any]]],
    Cs: list[float],
    best: int,
    *,
    loss: Loss,
    intercept_scaling: float,
    device: torch.device,
) -> Any:
    """The model's solution: the whole training split at ``Cs[best]``. Without PCA it shares
    the folds' matrix and starts from their mean solution at that C (in the problems' own
    coordinates they are close); with PCA its features are its own, so it walks the C path
    up to the chosen C."""
    from featx.fitting.solvers import linear

    problems, work, path = solutions[0]
    if problems.whole is not None:
        at_best = path[best]
        start = linear.Solution(
            at_best.coef.mean(axis=0, keepdims=True),
            at_best.intercept.mean(axis=0, keepdims=True),
            at_best.iterations[:1],
            at_best.gradient[:1],
            at_best.objective[:1],
        )
        everything = np.ones((1, len(problems.targets)), dtype=bool)
        (final,) = linear.solve_path(
            work, problems.targets, everything, [problems.whole], [Cs[best]], loss=loss, intercept_scaling=intercept_scaling, warm=start
        )
        return final
    prefix = build_pipeline(config.spec, scale=config.scale, pca=config.pca, seed=config.seed)[:-1]
    matrix, centre, spread = _standardised(prefix.fit_transform(X))
    chosen = Cs[best]
    up_to = sorted({value for value in Cs if value <= chosen})
    path = linear.solve_path(
        linear.Workspace(matrix, device),
        codes,
        np.ones((1, len(matrix)), dtype=bool),
        [linear.Affine(shift=-centre / spread, scale=1.0 / spread)],
        up_to,
        loss=loss,
        intercept_scaling=intercept_scaling,
    )
    return path[-1]


def _problem_sets(config: FitConfig, X: np.ndarray, codes: np.ndarray, folds: Sequence[Fold]) -> Iterator[_ProblemSet]:
    """Without PCA, one set: every fold on one shared matrix. With PCA, one set per fold,
    transformed by its own scaler and PCA (scikit-learn's, fitted on its training rows)."""
    from featx.fitting.solvers.linear import Affine

    if config.pca is None:
        order = _fold_order(folds, len(X))
        base = _scaled_base(config, X)
        matrix, centre, spread = _standardised(base)
        masks = np.zeros((len(folds), len(X)), dtype=bool)
        affines = []
        for slot, (train, _) in enumerate(folds):
            masks[slot, train] = True
            affines.append(Affine(*_own_scaling(config, base[train], centre, spread)))
        validation = [
            (fold, ((matrix[val] - affines[fold].shift) / affines[fold].scale).astype(np.float32), codes[val])
            for fold, (_, val) in enumerate(folds)
        ]
        whole = Affine(*_own_scaling(config, base, centre, spread))
        yield _ProblemSet(matrix[order], codes[order], masks[:, order], affines, validation, whole)
        return
    for fold, (train, val) in enumerate(folds):
        prefix = build_pipeline(config.spec, scale=config.scale, pca=config.pca, seed=config.seed)[:-1]
        matrix, centre, spread = _standardised(prefix.fit_transform(X[train]))
        yield _ProblemSet(
            matrix,
            codes[train],
            np.ones((1, len(train)), dtype=bool),
            [Affine(shift=-centre / spread, scale=1.0 / spread)],
            [(fold, prefix.transform(X[val]).astype(np.float32), codes[val])],
            None,
        )


def _fold_order(folds: Sequence[Fold], n_rows: int) -> np.ndarray:
    """The rows ordered by the fold that holds them out, when the folds' held-out rows
    partition the rows (k-fold splitters); else in their own order."""
    order = np.concatenate([np.asarray(val) for _, val in folds]) if folds else np.arange(n_rows)
    if len(order) != n_rows or not np.array_equal(np.sort(order), np.arange(n_rows)):
        return np.arange(n_rows)
    return order


def _standardised(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows - mean) / std`` in float32 (constant columns kept at scale 1), with the mean and std."""
    centre = rows.mean(axis=0, dtype=np.float64)
    spread = rows.std(axis=0, dtype=np.float64)
    spread[spread == 0] = 1.0
    return ((rows - centre) / spread).astype(np.float32), centre, spread


def _scaled_base(config: FitConfig, X: np.ndarray) -> np.ndarray:
    """The rows as every problem sees them before its own per-feature scaling: L2-normalised
    rows for ``scale=l2`` (a per-row operation, the same in every fold), else as they are."""
    if Scale(config.scale) is Scale.L2:
        return make_scaler(Scale.L2).fit_transform(X).astype(np.float32)
    return np.asarray(X, dtype=np.float32)


def _own_scaling(config: FitConfig, rows: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A problem's ``x' = (x - shift) / scale`` in the shared matrix's coordinates."""
    if Scale(config.scale) is Scale.STANDARD:
        mean, std = rows.mean(axis=0, dtype=np.float64), rows.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0  # StandardScaler's rule for constant features
        return (mean - centre) / spread, std / spread
    return -centre / spread, 1.0 / spread


def _predict(decision: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """scikit-learn's linear prediction: the sign for one column, else the argmax."""
    if decision.shape[1] == 1:
        return classes[(decision[:, 0] > 0).astype(np.intp)]
    return classes[np.argmax(decision, axis=1)]


def _linear_model(
    config: FitConfig, X: np.ndarray, y: np.ndarray, classes: np.ndarray, point: Point, coef: np.ndarray, intercept: np.ndarray
) -> Pipeline:
    """The scikit-learn Pipeline at ``point``: the prefix fitted on the whole split, the
    estimator holding the solution (no liblinear or lbfgs refit)."""
    model = build_pipeline(config.spec, scale=config.scale, pca=config.pca, seed=config.seed, params=point)
    if len(model.steps) > 1:
        model[:-1].fit(X, y)
    estimator = model.steps[-1][1]
    estimator.classes_ = classes
    estimator.coef_ = np.ascontiguousarray(coef, dtype=np.float64)
    estimator.intercept_ = np.ascontiguousarray(intercept, dtype=np.float64)
    estimator.n_features_in_ = coef.shape[1]
    estimator.n_iter_ = np.zeros(1, dtype=np.int32)
    return model


# --------------------------------------------------------------------------- k-NN


def _knn(
    config: FitConfig, X: np.ndarray, y: np.ndarray, folds: Sequence[Fold], points: Sequence[Point], *, device: torch.device, clock: _Clock
) -> tuple[np.ndarray, Any, dict[str, Any]]:
    from featx.fitting.search import group_points, transform_fold
    from featx.fitting.solvers.neighbors import nearest

    pipeline = build_pipeline(config.spec, scale=config.scale, pca=config.pca, seed=config.seed)
    prefix = pipeline[:-1] if len(pipeline.steps) > 1 else None
    defaults = pipeline.steps[-1][1].get_params()
    classes = np.unique(y)
    scores = np.zeros((len(points), len(folds)))
    for fold_index, fold in enumerate(folds):
        X_train, X_val = transform_fold(prefix, X, y, fold)
        labels = np.searchsorted(classes, y[fold[0]])
        truth = y[fold[1]]
        for key, indices in group_points(points, ("n_neighbors", "weights")).items():
            metric = dict(key).get("metric", defaults["metric"])
            k_max = max(int(points[i].get("n_neighbors", defaults["n_neighbors"])) for i in indices)
            distances, neighbours = nearest(X_train, X_val, k_max, metric=metric, device=device)
            neighbour_labels = labels[neighbours]
            for i in indices:
                k = int(points[i].get("n_neighbors", defaults["n_neighbors"]))
                weighting = points[i].get("weights", defaults["weights"])
                votes = neighbour_vote(
                    neighbour_labels[:, :k], neighbour_weights(distances[:, :k].astype(np.float64), weighting), len(classes)
                )
                scores[i, fold_index] = accuracy(truth, classes[votes])
    best = best_index(scores.mean(axis=1))
    clock.searched()
    model = build_pipeline(config.spec, scale=config.scale, pca=config.pca, seed=config.seed, params=points[best]).fit(X, y)
    clock.modelled()
    return scores, model, {}


def _knn_votes(model: Pipeline, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, *, device: torch.device) -> np.ndarray:
    """The fitted k-NN Pipeline's summed neighbour weights per class for ``X_test``
    ``(n_test, n_classes)``, its neighbours found on the device: scikit-learn's vote
    (:func:`featx.fitting.search.neighbour_vote`) without its CPU search."""
    from featx.fitting.solvers.neighbors import nearest

    estimator = model.steps[-1][1]
    prefix = model[:-1] if len(model.steps) > 1 else None
    train, queries = (X, X_test) if prefix is None else (prefix.transform(X), prefix.transform(X_test))
    distances, neighbours = nearest(train, queries, int(estimator.n_neighbors), metric=estimator.metric, device=device)
    labels = np.searchsorted(estimator.classes_, y)
    return neighbour_votes(labels[neighbours], neighbour_weights(distances.astype(np.float64), estimator.weights), len(estimator.classes_))

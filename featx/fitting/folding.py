"""A fitted run's Pipeline applied to new features: class scores, and the Pipeline folded
into plain arrays for an exported model.

* :func:`class_scores` is what ``featx predict`` reports: probabilities for estimators
  that give them (logistic regression, k-NN), decision values otherwise (LinearSVC), one
  column per class name of the run, computed by the saved Pipeline itself.
* :func:`fold_pipeline` turns the Pipeline (scaling, optional PCA, the estimator) into a
  :class:`~featx.core.heads.LinearHead` (everything linear folded into one affine map) or
  a :class:`~featx.core.heads.NeighborsHead` (k-NN with its training rows), whose scores
  equal :func:`class_scores` to float rounding (tested).

Pure: arrays and fitted estimators in, arrays out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from featx.core.errors import PredictError
from featx.core.heads import DECISION, PROBABILITY, Head, LinearHead, NeighborsHead

#: k-NN metrics an exported model computes (scikit-learn's ``effective_metric_``)
NEIGHBOR_METRICS = ("euclidean", "cosine", "manhattan")


def score_kind(model: Any) -> str:
    """:data:`~featx.core.heads.PROBABILITY` when the Pipeline's estimator gives
    probabilities, else :data:`~featx.core.heads.DECISION`."""
    return PROBABILITY if hasattr(model, "predict_proba") else DECISION


def class_scores(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class scores of the saved Pipeline: probabilities (``predict_proba``) where the
    estimator gives them, else decision values (``decision_function``).

    Args:
        model: the fitted Pipeline of a run.
        X: ``(n_samples, n_features)`` features.
        n_classes: the run's number of class names (columns of the result).

    Returns:
        ``(n_samples, n_classes)`` float64. A binary decision function (one value) becomes
        two columns, ``-d`` and ``d``; a class the estimator never saw scores 0
        (probability) or ``-inf`` (decision value).

    Raises:
        PredictError: the estimator gives neither probabilities nor decision values.
    """
    if score_kind(model) == PROBABILITY:
        values = np.asarray(model.predict_proba(X), dtype=np.float64)
        scores = np.zeros((len(values), n_classes), dtype=np.float64)
        scores[:, _columns(model, n_classes)] = values
        return scores
    if not hasattr(model, "decision_function"):
        raise PredictError(f"{type(model).__name__} gives neither probabilities nor decision values")
    return decision_scores(model, X, n_classes)


def decision_scores(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """The Pipeline's decision values, one column per class name of the run.

    Returns:
        ``(n_samples, n_classes)`` float64; a binary decision function's value ``d``
        becomes ``-d, d``; a class the estimator never saw scores ``-inf``.
    """
    values = np.asarray(model.decision_function(X), dtype=np.float64)
    if values.ndim == 1:
        values = np.stack([-values, values], axis=1)
    scores = np.full((len(values), n_classes), -np.inf, dtype=np.float64)
    scores[:, _columns(model, n_classes)] = values
    return scores


def fold_pipeline(model: Any, n_classes: int) -> Head:
    """The Pipeline as plain arrays: scaling, PCA and a linear classifier folded into one
    affine map, or the k-NN vote with its training rows.

    Args:
        model: a fitted Pipeline of ``featx fit``: a scaling step (StandardScaler,
            Normalizer or none), an optional PCA, and LogisticRegression, LinearSVC or
            KNeighborsClassifier.
        n_classes: the run's number of class names.

    Returns:
        A :class:`~featx.core.heads.LinearHead` or :class:`~featx.core.heads.NeighborsHead`.

    Raises:
        PredictError: a step or estimator that cannot be folded (names it).
    """
    steps = [step for _, step in model.steps]
    estimator, transforms = steps[-1], [step for step in steps[:-1] if step is not None and step != "passthrough"]
    normalize, transforms = _leading_normalizer(transforms)
    dim = int(estimator.n_features_in_) if not transforms else int(transforms[0].n_features_in_)
    scale, shift = np.ones(dim), np.zeros(dim)
    projection: np.ndarray | None = None
    offset: np.ndarray | None = None
    for step in transforms:
        name = type(step).__name__
        if name == "StandardScaler" and projection is None:
            mean = np.zeros(dim) if step.mean_ is None else np.asarray(step.mean_, dtype=np.float64)
            spread = np.ones(dim) if step.scale_ is None else np.asarray(step.scale_, dtype=np.float64)
            scale, shift = scale / spread, (shift - mean) / spread
        elif name == "PCA" and projection is None:
            components = np.asarray(step.components_, dtype=np.float64)
            if step.whiten:
                components = components / np.sqrt(np.asarray(step.explained_variance_, dtype=np.float64))[:, None]
            projection, offset = components, -components @ np.asarray(step.mean_, dtype=np.float64)
        else:
            raise PredictError(f"cannot export a Pipeline with a {name} step here (exported: StandardScaler or Normalizer, then PCA)")
    kind = type(estimator).__name__
    if kind == "KNeighborsClassifier":
        return _neighbors(estimator, n_classes, normalize, scale, shift, projection, offset)
    if kind not in ("LogisticRegression", "LinearSVC"):
        raise PredictError(f"cannot export {kind}: exported are LogisticRegression, LinearSVC and KNeighborsClassifier")
    coef, intercept = np.asarray(estimator.coef_, dtype=np.float64), np.asarray(estimator.intercept_, dtype=np.float64).ravel()
    score = PROBABILITY if kind == "LogisticRegression" else DECISION
    if coef.shape[0] == 1:  # binary: one decision value d for the second class
        # softmax([0, d]) is [1 - sigmoid(d), sigmoid(d)]; decision values are [-d, d]
        low = np.zeros_like(coef) if score == PROBABILITY else -coef
        coef = np.concatenate([low, coef])
        intercept = np.concatenate([[0.0] if score == PROBABILITY else -intercept, intercept])
    # classifier(project(x * scale + shift)) = W P diag(scale) x + W (P shift + offset) + b
    if projection is not None and offset is not None:
        coef, intercept = coef @ projection, coef @ offset + intercept
    weight, bias = coef * scale[None, :], coef @ shift + intercept
    full_weight = np.zeros((n_classes, dim))
    full_bias = np.full(n_classes, -np.inf)
    columns = _columns(estimator, n_classes)
    full_weight[columns], full_bias[columns] = weight, bias
    return LinearHead(normalize=normalize, weight=full_weight, bias=full_bias, score=score)


def _leading_normalizer(transforms: list[Any]) -> tuple[bool, list[Any]]:
    """Whether the first step normalises rows to unit Euclidean length (it is then left out)."""
    if transforms and type(transforms[0]).__name__ == "Normalizer":
        if transforms[0].norm != "l2":
            raise PredictError(f"cannot export a Normalizer with norm={transforms[0].norm!r} (only l2)")
        return True, transforms[1:]
    return False, transforms


def _neighbors(
    estimator: Any,
    n_classes: int,
    normalize: bool,
    scale: np.ndarray,
    shift: np.ndarray,
    projection: np.ndarray | None,
    offset: np.ndarray | None,
) -> NeighborsHead:
    metric = str(estimator.effective_metric_)
    if metric not in NEIGHBOR_METRICS:
        raise PredictError(f"cannot export k-NN with metric {metric!r}; exported are {', '.join(NEIGHBOR_METRICS)}")
    weights = estimator.weights
    if weights not in ("uniform", "distance"):
        raise PredictError("cannot export k-NN with a weighting function; exported are uniform and distance")
    classes = np.asarray(estimator.classes_)
    return NeighborsHead(
        normalize=normalize,
        scale=scale,
        shift=shift,
        projection=projection,
        offset=offset,
        train=np.ascontiguousarray(estimator._fit_X, dtype=np.float32),
        train_labels=classes[np.asarray(estimator._y)].astype(np.int64),
        n_classes=n_classes,
        n_neighbors=int(estimator.n_neighbors),
        weights=str(weights),
        metric=metric,
    )


def _columns(model: Any, n_classes: int) -> np.ndarray:
    """The score column of each of the estimator's classes (its labels are class indices)."""
    classes = np.asarray(model.classes_)
    if classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= n_classes:
        raise PredictError(f"the model's classes {classes.tolist()[:10]} are not indices of the run's {n_classes} class names")
    return classes.astype(np.int64)

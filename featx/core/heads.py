"""A fitted classifier head as plain arrays: the contract between stage two, which folds a
scikit-learn Pipeline into it (:mod:`featx.fitting.folding`), and stage one, which compiles
it to torch for an exported model (:mod:`featx.extraction.scripted`).

Two kinds of head, both taking a backbone's ``(n, D)`` features to ``(n, n_classes)``
scores, one column per class name of the run (a class the training split lacked gets
probability 0, or decision value ``-inf``):

* :class:`LinearHead`: optional row normalisation to unit length, then one affine map
  (scaling, PCA and the linear classifier folded together), then a softmax for
  probabilities (logistic regression) or nothing for decision values (LinearSVC).
* :class:`NeighborsHead`: optional row normalisation, per-column scale and shift,
  optional projection (PCA), then a k-nearest-neighbour vote over the training rows as
  the classifier stored them, as scikit-learn's ``predict_proba`` computes it.

numpy only: nothing here imports scikit-learn or torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: what a head's scores are
PROBABILITY, DECISION = "probability", "decision"


@dataclass(frozen=True, eq=False)
class LinearHead:
    """``scores = output(normalise(x) @ weight.T + bias)``.

    Attributes:
        normalize: divide each row by its Euclidean length first (zero rows stay zero).
        weight: ``(n_classes, D)`` float64.
        bias: ``(n_classes,)`` float64; ``-inf`` for a class the classifier never saw.
        score: :data:`PROBABILITY` (softmax over the classes) or :data:`DECISION` (as is).
    """

    normalize: bool
    weight: np.ndarray
    bias: np.ndarray
    score: str


@dataclass(frozen=True, eq=False)
class NeighborsHead:
    """A k-NN vote: ``z = project(normalise(x) * scale + shift)``, then the ``n_neighbors``
    training rows nearest to ``z`` vote for their class.

    Attributes:
        normalize: divide each row by its Euclidean length first.
        scale, shift: ``(D,)`` float64 per-column affine map (ones and zeros for none).
        projection: ``(D', D)`` float64, or None for no projection.
        offset: ``(D',)`` float64 added after the projection (None with it).
        train: ``(n_train, D')`` float32, the training rows as the classifier stored them.
        train_labels: ``(n_train,)`` int64 class indices (into the run's class names).
        n_classes: columns of the scores.
        n_neighbors: k.
        weights: "uniform" (each neighbour one vote) or "distance" (``1 / distance``; a
            query at distance zero from training rows takes only their votes).
        metric: "euclidean", "cosine" or "manhattan".
    """

    normalize: bool
    scale: np.ndarray
    shift: np.ndarray
    projection: np.ndarray | None
    offset: np.ndarray | None
    train: np.ndarray
    train_labels: np.ndarray
    n_classes: int
    n_neighbors: int
    weights: str
    metric: str

    @property
    def score(self) -> str:
        """k-NN scores are vote shares: probabilities."""
        return PROBABILITY


Head = LinearHead | NeighborsHead

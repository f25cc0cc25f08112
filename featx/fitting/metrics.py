"""Scores of a fitted classifier on held-out data: pure functions of labels and scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP_K = 5


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions, computed as scikit-learn's ``accuracy_score`` does.

    Args:
        y_true, y_pred: ``(n_samples,)`` labels.
    """
    return float(np.average(np.asarray(y_true) == np.asarray(y_pred)))


def top_k_accuracy(y_true: np.ndarray, scores: np.ndarray, classes: np.ndarray, *, k: int = TOP_K) -> float | None:
    """Fraction of samples whose true label is among the ``k`` highest-scored classes.

    Ties are broken towards the lower class index (a stable sort), so the figure never
    flatters a model that gives many classes the same score.

    Args:
        y_true: ``(n_samples,)`` labels (may include labels the model never saw).
        scores: ``(n_samples, n_classes)`` decision values or probabilities.
        classes: ``(n_classes,)`` the label of each score column.
        k: how many top classes count.

    Returns:
        The accuracy, or None when the model knows ``k`` classes or fewer (it would
        trivially be 1).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] <= k:
        return None
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = (np.asarray(classes)[top] == np.asarray(y_true)[:, None]).any(axis=1)
    return float(np.mean(hits))


@dataclass(frozen=True)
class ClassificationScores:
    """Test-split scores over every class of the feature file (absent classes score 0).

    Attributes:
        accuracy: fraction correct.
        balanced_accuracy: mean recall over the classes present in the test split.
        macro_f1: unweighted mean F1 over the classes present in truth or prediction.
        precision, recall, f1: ``(n_classes,)`` per class.
        support: ``(n_classes,)`` true samples per class.
        confusion: ``(n_classes, n_classes)`` counts, rows true class, columns predicted.
    """

    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> ClassificationScores:
    """Accuracy, macro F1, per-class precision/recall/F1 and the confusion matrix.

    Args:
        y_true, y_pred: ``(n_samples,)`` integer labels in ``0 .. n_classes-1``.
        n_classes: number of classes named by the feature file.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    labels = np.arange(n_classes)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = np.asarray(support) > 0
    return ClassificationScores(
        accuracy=accuracy(y_true, y_pred),
        balanced_accuracy=float(np.mean(np.asarray(recall)[present])) if present.any() else 0.0,
        macro_f1=float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        precision=np.asarray(precision, dtype=float),
        recall=np.asarray(recall, dtype=float),
        f1=np.asarray(f1, dtype=float),
        support=np.asarray(support, dtype=int),
        confusion=confusion_matrix(y_true, y_pred, labels=labels),
    )


def log_loss(y_true: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float | None:
    """Mean negative log-likelihood of the true labels (probabilities clipped at 1e-15, as scikit-learn does).

    Args:
        y_true: ``(n_samples,)`` labels.
        probabilities: ``(n_samples, n_classes)`` predicted probabilities.
        classes: ``(n_classes,)`` the label of each column.

    Returns:
        The loss, or None when a true label is not among ``classes`` (the model never saw it).
    """
    column = {int(c): i for i, c in enumerate(np.asarray(classes))}
    truth = np.asarray(y_true)
    if any(int(t) not in column for t in np.unique(truth)):
        return None
    probs = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-15, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    picked = probs[np.arange(len(truth)), [column[int(t)] for t in truth]]
    return float(-np.mean(np.log(picked)))

"""How sure a test score is: intervals, paired tests and their correction, as small pure functions.

* :func:`wilson_interval`: the 95% Wilson score interval of an accuracy over the test
  images (Wilson 1927; Newcombe 1998, method 3). It stays inside [0, 1] and behaves at
  0 and n errors, where the normal approximation does not.
* :func:`mcnemar_exact`: the exact (binomial) McNemar test of two classifiers scored on
  the same test images: only the images one gets right and the other wrong count.
* :func:`holm`: Holm's step-down adjustment of several p-values (it controls the
  family-wise error rate without assuming independence).
* :func:`tied_with_best`: every cell of a table against the best one, paired, corrected.

No scipy or statsmodels: each function is a few lines of numpy and ``math`` that the
tests check against hand computations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: the two-sided 95% normal quantile
Z95 = 1.959963984540054
#: the level at which a cell counts as worse than the best (after correction)
ALPHA = 0.05
INTERVAL_METHOD = "wilson score interval, 95%"
PAIRED_TEST = "exact McNemar test (two-sided, binomial over the discordant images) against the best cell, Holm-corrected over the table"


def wilson_interval(correct: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct / n``.

    Args:
        correct: successes (correctly classified test images).
        n: trials (test images), > 0.
        z: the normal quantile (1.96 for 95%).

    Returns:
        ``(low, high)``, both within [0, 1].

    Raises:
        ValueError: ``n`` is not positive or ``correct`` is outside ``0..n``.
    """
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"a proportion needs 0 <= correct <= n and n > 0, got {correct}/{n}")
    p = correct / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    Args:
        b: images the first classifier gets right and the second wrong.
        c: images the second gets right and the first wrong.

    Returns:
        ``min(1, 2 * P[X <= min(b, c)])`` with ``X ~ Binomial(b + c, 1/2)``; 1.0 when
        there is no discordant image.
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2.0 * tail / 2**n)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    The i-th smallest of m p-values becomes ``max over j <= i of min(1, (m - j + 1) p_(j))``;
    rejecting where the adjusted value is below alpha keeps the family-wise error at alpha.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def discordant(wrong_a: np.ndarray, wrong_b: np.ndarray) -> tuple[int, int]:
    """``(b, c)`` of two boolean ``(n_test,)`` error masks: a right and b wrong, b right and a wrong."""
    a, b = np.asarray(wrong_a, dtype=bool), np.asarray(wrong_b, dtype=bool)
    return int(np.sum(~a & b)), int(np.sum(a & ~b))


@dataclass(frozen=True)
class Comparison:
    """One cell against the best cell of its table.

    Attributes:
        p_value: the exact McNemar p-value (1.0 for the best cell itself), or None when
            the cell carries no per-image errors (a record of an older featx).
        p_adjusted: the Holm-adjusted p-value, or None likewise.
        tied: not significantly worse than the best at :data:`ALPHA` after correction
            (the best cell is tied with itself); None when it cannot be tested.
    """

    p_value: float | None
    p_adjusted: float | None
    tied: bool | None


def tied_with_best(
    errors: Mapping[str, np.ndarray | None], accuracy: Mapping[str, float], *, alpha: float = ALPHA
) -> dict[str, Comparison]:
    """Compare every cell with the best one on the same test images.

    Args:
        errors: cell -> boolean ``(n_test,)`` mask of the test images it gets wrong (the
            same images, in the same order, for every cell), or None when unknown.
        accuracy: cell -> test accuracy; the best is the highest (the first on ties).
        alpha: the family-wise level.

    Returns:
        cell -> :class:`Comparison`. The p-values of the cells other than the best are
        Holm-adjusted together; a cell whose adjusted p-value is at least ``alpha`` is
        tied with the best. Without the best cell's errors nothing can be tested.
    """
    best = max(accuracy, key=lambda cell: accuracy[cell])
    best_errors = errors.get(best)
    raw: dict[str, float] = {}
    if best_errors is not None:
        for cell, wrong in errors.items():
            if cell != best and wrong is not None and len(wrong) == len(best_errors):
                raw[cell] = mcnemar_exact(*discordant(wrong, best_errors))
    adjusted = dict(zip(raw, holm(list(raw.values()))))
    result = {}
    for cell in accuracy:
        if cell == best:
            result[cell] = Comparison(1.0, 1.0, True)
        elif cell in raw:
            result[cell] = Comparison(raw[cell], adjusted[cell], adjusted[cell] >= alpha)
        else:
            result[cell] = Comparison(None, None, None)
    return result


def confused_pairs(confusion: Sequence[Sequence[int]] | np.ndarray, *, top: int = 10) -> list[tuple[int, int, int]]:
    """The most frequent off-diagonal cells of a confusion matrix.

    Args:
        confusion: ``(n_classes, n_classes)`` counts, rows true class, columns predicted.
        top: how many pairs at most.

    Returns:
        ``(true, predicted, count)`` with count > 0, the largest first (ties: by true, then
        predicted class index).
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    pairs = [(int(t), int(p), int(matrix[t, p])) for t, p in zip(*np.nonzero(matrix)) if t != p]
    return sorted(pairs, key=lambda item: (-item[2], item[0], item[1]))[:top]

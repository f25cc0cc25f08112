"""``featx.fitting.statistics``: intervals, paired tests and their correction, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from featx.fitting.metrics import classification_scores, log_loss
from featx.fitting.search import random_points
from featx.fitting.statistics import confused_pairs, discordant, holm, mcnemar_exact, tied_with_best, wilson_interval


@pytest.mark.parametrize(
    ("correct", "n", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3 (score)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombes_table(correct: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(correct, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_by_hand_and_at_the_edges() -> None:
    # 8/10: p = 0.8, z^2 = 3.8415: centre = (0.8 + 0.19207) / 1.38415 = 0.71673,
    # half = 1.96/1.38415 * sqrt(0.016 + 0.0096037) = 0.22664 -> [0.4901, 0.9434]
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4901, 0.9434), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 0)


def test_exact_mcnemar_on_known_tables() -> None:
    # b=1, c=6: n=7, P[X<=1] = (1 + 7) / 128, two-sided 16/128
    assert mcnemar_exact(1, 6) == pytest.approx(0.125)
    assert mcnemar_exact(6, 1) == pytest.approx(0.125)
    # b=2, c=10: (1 + 12 + 66) / 4096 * 2
    assert mcnemar_exact(2, 10) == pytest.approx(158 / 4096)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0  # capped at 1


def test_holm_step_down() -> None:
    # sorted 0.01, 0.02, 0.04 with m = 3: 0.03, 0.04, max(0.04, 0.04) = 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_tied_with_best_pairs_the_same_images() -> None:
    n = 100
    best = np.zeros(n, dtype=bool)
    best[:10] = True  # 90% right
    close = np.zeros(n, dtype=bool)
    close[:12] = True  # 88%: b=2, c=0 -> p = 0.5
    far = np.zeros(n, dtype=bool)
    far[:30] = True  # 70%: b=20, c=0 -> p tiny
    assert discordant(close, best) == (0, 2)
    result = tied_with_best({"best": best, "close": close, "far": far, "old": None}, {"best": 0.9, "close": 0.88, "far": 0.7, "old": 0.89})
    assert result["best"].tied and result["best"].p_value == 1.0
    assert result["close"].p_value == pytest.approx(0.5)
    assert result["close"].p_adjusted == pytest.approx(0.5)  # Holm: the larger of two p-values times 1
    assert result["close"].tied is True
    assert result["far"].p_value == pytest.approx(2 / 2**20)
    assert result["far"].tied is False
    assert result["old"].tied is None and result["old"].p_value is None


def test_confused_pairs_largest_first() -> None:
    confusion = [[5, 3, 0], [1, 7, 0], [3, 0, 2]]
    assert confused_pairs(confusion) == [(0, 1, 3), (2, 0, 3), (1, 0, 1)]
    assert confused_pairs(confusion, top=1) == [(0, 1, 3)]


def test_balanced_accuracy_and_log_loss_by_hand() -> None:
    y_true = np.array([0, 0, 0, 1])
    y_pred = np.array([0, 0, 0, 0])
    scores = classification_scores(y_true, y_pred, 3)
    assert scores.accuracy == 0.75
    assert scores.balanced_accuracy == pytest.approx(0.5)  # recall 1 and 0; class 2 absent
    probs = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert log_loss(np.array([0, 1]), probs, np.array([0, 1])) == pytest.approx(-(np.log(0.5) + np.log(0.75)) / 2)
    assert log_loss(np.array([2]), probs[:1], np.array([0, 1])) is None


def test_random_points_are_seeded_and_log_uniform_within_the_ranges() -> None:
    grid = {"C": [0.001, 0.1, 1000.0], "n_neighbors": [1, 50], "weights": ["uniform", "distance"]}
    points = random_points(grid, 200, seed=3)
    assert points == random_points(grid, 200, seed=3)
    assert points != random_points(grid, 200, seed=4)
    Cs = np.array([p["C"] for p in points])
    assert Cs.min() >= 0.001 and Cs.max() <= 1000.0
    # log-uniform: about half the draws below the geometric middle (1.0)
    assert 0.35 < np.mean(Cs < 1.0) < 0.65
    assert all(1 <= p["n_neighbors"] <= 50 and isinstance(p["n_neighbors"], int) for p in points)
    assert {p["weights"] for p in points} == {"uniform", "distance"}

"""Figures of stage two and the report, drawn with matplotlib's Agg canvas.

No pyplot, so no global figure state and no display: each function builds its own
:class:`~matplotlib.figure.Figure` and returns PNG bytes. :func:`data_uri` embeds them
in a self-contained HTML page.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from featx.core.figures import figure, png_bytes
from featx.fitting.grids import format_point, format_value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def curve_axis(grid: Mapping[str, Sequence[Any]]) -> str | None:
    """The grid parameter to put on the x axis: ``C``, else ``n_neighbors``, else the first
    numeric parameter with more than one value; None when there is none."""
    numeric = [name for name, values in grid.items() if len(values) > 1 and all(_is_number(v) for v in values)]
    for preferred in ("C", "n_neighbors"):
        if preferred in numeric:
            return preferred
    return numeric[0] if numeric else None


def grid_curve_png(
    points: Sequence[Mapping[str, Any]],
    means: Sequence[float],
    stds: Sequence[float],
    *,
    grid: Mapping[str, Sequence[Any]],
    best: Mapping[str, Any],
    title: str,
) -> bytes:
    """CV accuracy against one grid parameter, one line per setting of the others.

    Error bars are the standard deviation over the folds; the chosen point is starred.
    ``C`` (and any parameter spanning more than a decade) is on a log axis. A grid with
    no numeric parameter of several values is drawn as bars, one per point.

    Args:
        points: the grid points, in record order.
        means, stds: CV accuracy of each point.
        grid: parameter -> values swept.
        best: the chosen point.
        title: the figure title.
    """
    axis = curve_axis(grid)
    means_a, stds_a = np.asarray(means, dtype=float), np.asarray(stds, dtype=float)
    fig = figure(6.4, 4.2)
    ax = fig.add_subplot()
    if axis is None:
        labels = [format_point(p, short=True) or "default" for p in points]
        positions = np.arange(len(points))
        colours = ["tab:orange" if dict(p) == dict(best) else "tab:blue" for p in points]
        ax.bar(positions, means_a, yerr=stds_a, color=colours, capsize=3)
        ax.set_xticks(
            positions, labels, rotation=30 if len(points) > 3 else 0, ha="right" if len(points) > 3 else "center", fontsize="small"
        )
        _accuracy_limits(ax, means_a, stds_a)
    else:
        others = [name for name in grid if name != axis and len(grid[name]) > 1]
        series = list(itertools.product(*(grid[name] for name in others))) or [()]
        for setting in series:
            rows = [i for i, p in enumerate(points) if all(p.get(name) == value for name, value in zip(others, setting))]
            rows.sort(key=lambda i: points[i][axis])
            x = np.asarray([points[i][axis] for i in rows], dtype=float)
            label = ", ".join(f"{name}={format_value(value)}" for name, value in zip(others, setting)) or None
            ax.errorbar(x, means_a[rows], yerr=stds_a[rows], marker="o", markersize=3.5, capsize=3, linewidth=1.4, label=label)
        values = np.asarray(grid[axis], dtype=float)
        if axis == "C" or (values.min() > 0 and values.max() / values.min() > 10):
            ax.set_xscale("log")
        if axis != "C" and len(values) <= 12:
            ax.set_xticks(values, [format_value(v) for v in grid[axis]])
            ax.minorticks_off()
        best_index = next(i for i, p in enumerate(points) if dict(p) == dict(best))
        ax.plot(
            [points[best_index][axis]],
            [means_a[best_index]],
            marker="*",
            markersize=16,
            color="gold",
            markeredgecolor="black",
            markeredgewidth=0.8,
            linestyle="none",
            zorder=5,
            label=f"best: {format_point(best, short=True)}",
        )
        ax.set_xlabel({"C": "C (inverse regularisation strength)", "n_neighbors": "k (neighbours)"}.get(axis, axis))
        fig.legend(loc="outside lower center", fontsize="x-small", frameon=False, ncols=2 if len(series) > 1 else 1)
        _accuracy_limits(ax, means_a, stds_a)
    ax.set_ylabel("CV accuracy (mean ± std)")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, which="major", alpha=0.3)
    return png_bytes(fig)


def _accuracy_limits(ax: Any, means: np.ndarray, stds: np.ndarray) -> None:
    low, high = float(np.min(means - stds)), float(np.max(means + stds))
    pad = max((high - low) * 0.08, 0.005)
    ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad) + 0.002)


def confusion_png(matrix: Sequence[Sequence[int]], class_names: Sequence[str], *, title: str) -> bytes:
    """The confusion matrix as a heat map (colour: share of the true class; text: counts).

    Rows are true classes, columns predicted ones. Counts are written in the cells for
    up to 20 classes; tick labels are shortened to 14 characters and thinned out beyond
    40 classes.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    n = counts.shape[0]
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    side = min(max(4.6, 0.42 * n + 2.2), 11.0)
    fig = figure(side + 0.9, side)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="share of the true class")
    names = [name if len(name) <= 14 else name[:13] + "…" for name in class_names]
    step = 1 if n <= 40 else int(np.ceil(n / 40))
    ticks = np.arange(0, n, step)
    fontsize = "small" if n <= 12 else "x-small" if n <= 25 else 5
    rotate = n > 3 and max(len(name) for name in names) > 2
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=fontsize)
    ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize="medium")
    if n <= 20:
        for (row, col), count in np.ndenumerate(counts):
            if count:
                ax.text(
                    col,
                    row,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize="x-small" if n > 10 else "small",
                    color="white" if shares[row, col] > 0.55 else "black",
                )
    return png_bytes(fig)


def data_efficiency_png(lines: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]], *, title: str) -> bytes:
    """Test accuracy against labelled training images per class: a line per backbone and
    classifier, a band of ± one std over the draws, log x axis.

    Args:
        lines: label -> ``(images per class, mean accuracy, std)``, x ascending (the whole
            train split at its mean images per class).
        title: the figure title.
    """
    fig = figure(6.8, 4.4)
    ax = fig.add_subplot()
    for label, (x, mean, std) in lines.items():
        xs, ms, ss = (np.asarray(v, dtype=float) for v in (x, mean, std))
        (line,) = ax.plot(xs, ms, marker="o", markersize=3.5, linewidth=1.4, label=label)
        ax.fill_between(xs, ms - ss, ms + ss, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images per class (log scale; last point: the whole train split)")
    ax.set_ylabel("test accuracy (mean ± std over draws)")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="x-small", frameon=False)
    return png_bytes(fig)

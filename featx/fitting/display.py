"""Notebook display of a run record: a one-line ``repr`` and an HTML summary with its grid."""

from __future__ import annotations

from typing import Any

from featx.core.display import html_table
from featx.fitting.grids import format_point, format_short

# a run record comes in as Any: records imports this module (for its reprs), not the other way
RunRecord = Any


def run_repr(record: RunRecord) -> str:
    """``RunRecord(logreg on resnet50 (cifar10), best C=0.1, test accuracy 0.9158, key 3f2a...)``."""
    f = record.features
    return (
        f"RunRecord({record.clf} on {f.backbone} ({f.dataset}), best {format_point(record.best_params, short=True)}, "
        f"test accuracy {record.test_accuracy:.4f}, key {record.run_key})"
    )


def run_html(record: RunRecord) -> str:
    """The record's headline numbers, then its grid (CV mean and std per point), as HTML tables."""
    f = record.features
    summary = [
        ("classifier", record.clf + (f" (scale {record.scale}" + (f", PCA {record.pca})" if record.pca else ")"))),
        ("features", f"{f.backbone} on {f.dataset}: {f.n_train} train / {f.n_test} test, {f.feature_dim}-d"),
        ("best", format_point(record.best_params, short=True)),
        ("CV accuracy", f"{record.cv_best_score:.4f} ± {record.cv_best_std:.4f} ({record.cv} folds)"),
        ("test accuracy", f"{record.test_accuracy:.4f}"),
        *([("top-5 accuracy", f"{record.top5_accuracy:.4f}")] if record.top5_accuracy is not None else []),
        ("macro F1", f"{record.macro_f1:.4f}"),
        ("run key", record.run_key),
    ]
    names = list(record.grid)
    grid = [
        [
            *(format_short(point.params[n]) for n in names),
            f"{point.mean:.4f}",
            f"{point.std:.4f}",
            "best" if point.params == record.best_params else "",
        ]
        for point in record.cv_results
    ]
    return html_table(summary, caption=run_repr(record)) + html_table(grid, [*names, "cv mean", "cv std", ""])

"""The comparison as a pandas DataFrame, for a notebook: ``featx.compare()``.

The same rows as the report's ``comparison.csv`` (one per backbone x classifier, the
newest run of each cell), built by the report's own model, so a notebook and the page
never disagree.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from featx.fitting.records import iter_records
from featx.reporting.model import comparison_frame, select_runs

if TYPE_CHECKING:
    import pandas as pd


def compare(reports_dir: str | os.PathLike[str] | None = None, *, dataset: str | None = None, wide: bool = False) -> pd.DataFrame:
    """The comparison of every fitted run under ``reports_dir``.

    Example::

        table = featx.compare()                       # one row per backbone x classifier
        featx.compare(wide=True)                      # backbones x classifiers, test accuracy

    Args:
        reports_dir: reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
        dataset: only the runs on this data set (its name, as in the records).
        wide: the report's table instead: one row per (data set, backbone), one column
            per classifier, test accuracy in the cells.

    Returns:
        The tidy frame (columns ``dataset``, ``backbone``, ``classifier``,
        ``test_accuracy``, ``cv_mean``, ``cv_std``, ``best_params``, ... ``run_key``), or
        the wide one. Empty (no rows) when there are no runs.
    """
    records = [r for r in iter_records(reports_dir) if dataset is None or r.features.dataset == dataset]
    frame = comparison_frame(select_runs(records)) if records else _empty()
    if not wide:
        return frame
    if frame.empty:
        return frame
    columns = list(dict.fromkeys(frame["classifier"]))
    table = frame.pivot_table(index=["dataset", "backbone"], columns="classifier", values="test_accuracy", sort=False)
    return table[columns]


def _empty() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=["dataset", "backbone", "classifier", "test_accuracy", "cv_mean", "cv_std", "best_params", "run_key"])

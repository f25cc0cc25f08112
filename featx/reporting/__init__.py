"""The report: every run record under ``reports/`` on one self-contained HTML page.

It owns the data model of the page (:mod:`~featx.reporting.model`: which runs, which
tables, rows and columns), the views (:mod:`~featx.reporting.views`: what each part of
the page shows), provenance (:mod:`~featx.reporting.provenance`: the commands that
reproduce every number, versions, pipeline manifests), the plots
(:mod:`~featx.reporting.plots`), the Jinja2 template (``templates/report.html.j2``) and
rendering with the CSV and Markdown beside the page (:mod:`~featx.reporting.render`).
The report only reads: run records, the feature attributes they carry, PCA plots (drawn
with stage two's :func:`featx.pca` when missing and the features are still cached).

Import rule: the report imports stage two (its records, classifier registry, grids and
PCA), :mod:`featx.cache` and :mod:`featx.core`; never stage one (no torch), the runner,
the Dask home or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featx.core.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "report": "featx.reporting.render",
        "ReportFiles": "featx.reporting.render",
    },
)

if TYPE_CHECKING:  # pragma: no cover
    from featx.reporting.render import ReportFiles, report

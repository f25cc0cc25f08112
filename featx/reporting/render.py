"""``featx.report``: the page, the comparison CSV and Markdown, written atomically.

:func:`report` reads every run record under the reports root
(:func:`featx.fitting.records.iter_records`), selects the runs shown
(:mod:`featx.reporting.model`), builds the views (:mod:`featx.reporting.views`) and the
provenance (:mod:`featx.reporting.provenance`), and renders the Jinja2 template
``featx/reporting/templates/report.html.j2`` with autoescaping on. Beside the page:
``comparison.csv`` (one row per backbone x classifier, every number) and
``comparison.md`` (the tables as Markdown). Features made with random weights are
flagged on the page, in the table and in every run of them.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from featx._version import __version__
from featx.core import paths
from featx.core.atomic import atomic_write_text
from featx.core.errors import ConfigError, ReportError
from featx.core.ownership import FileKind, contains, ensure_replaceable, starts_with
from featx.fitting.curves import scan_curves
from featx.fitting.records import RUNS_DIR, SkippedRecord, scan_records
from featx.reporting.model import comparison_frame, curves_frame, select_runs
from featx.reporting.provenance import provenance, read_manifests
from featx.reporting.views import TableView, ThumbnailSource, curves_views, pct, pp, table_view

log = logging.getLogger(__name__)

REPORT_FILE = "index.html"
CSV_FILE = "comparison.csv"
MARKDOWN_FILE = "comparison.md"
CURVES_FILE = "curves.csv"
TEMPLATE = "report.html.j2"
#: a page featx wrote: the template's head names featx as its generator
PAGE_KIND = FileKind("report page", contains(b'<meta name="generator" content="featx '))
CSV_KIND = FileKind("comparison table (CSV)", starts_with(b"dataset,n_train,n_test,backbone,"))
CURVES_CSV_KIND = FileKind("data-efficiency curves (CSV)", starts_with(b"dataset,backbone,classifier,shots,"))
MARKDOWN_KIND = FileKind("comparison (Markdown)", starts_with(b"# featx comparison"))


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`report` wrote.

    Attributes:
        html: the page.
        csv: every backbone x classifier result, one row each.
        markdown: the comparison tables as Markdown.
        n_runs: runs shown (one per cell).
        n_tables: test sets (one table each).
        random_weights: whether any features shown were made with random weights (contrast rows
            beside their pretrained twin excepted).
        skipped: files under ``runs/`` that are not readable run records (listed on the page).
    """

    html: Path
    csv: Path
    markdown: Path
    n_runs: int
    n_tables: int
    random_weights: bool
    skipped: tuple[SkippedRecord, ...] = ()


def report(
    reports_dir: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    pca: bool = True,
    command: str | None = None,
    thumbnails: ThumbnailSource | None = None,
) -> ReportFiles:
    """Write the HTML report of every run record under the reports root, with CSV and Markdown.

    Example::

        files = featx.report()          # reports/index.html, comparison.csv, comparison.md
        files.html

    Args:
        reports_dir: reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
        out: the HTML file to write (default ``<reports_dir>/index.html``); the CSV and
            Markdown files go beside it.
        pca: draw the PCA plots of features that have none yet under ``reports/pca/``
            (reads the features when they are still cached); False shows only existing ones.
        command: the command line that asked for the report, for the provenance block.
        thumbnails: finds the test images behind cache rows, for the strips of misclassified
            images per confused pair (``featx report`` passes
            :func:`featx.extraction.thumbnails.row_thumbnails`); None: no strips.

    Returns:
        The files written and what they hold.

    Raises:
        ReportError: there are no readable run records.
        ConfigError: ``out`` is named like the CSV or Markdown file beside it.
        ForeignFileError: a file featx did not write as that kind (a run record, an image,
            any file of yours) is where the page, the CSV or the Markdown would go;
            checked before anything is written.
    """
    root = paths.reports_dir(reports_dir)
    scan = scan_records(root)
    records = scan.records
    if not records:
        skipped = f" ({len(scan.skipped)} file(s) there are not readable records: see the log)" if scan.skipped else ""
        raise ReportError(
            f"no run records under {root / RUNS_DIR}{skipped}; run `featx fit` (or `featx run PIPELINE.yaml`, or `featx demo`) first"
        )
    html_path = Path(out).expanduser() if out is not None else root / REPORT_FILE
    if html_path.name in (CSV_FILE, MARKDOWN_FILE, CURVES_FILE):
        raise ConfigError(f"{html_path.name} is the name of the file written beside the page; name the page otherwise", field="out")
    csv_path, md_path, curves_path = html_path.with_name(CSV_FILE), html_path.with_name(MARKDOWN_FILE), html_path.with_name(CURVES_FILE)
    for path, kind in ((html_path, PAGE_KIND), (csv_path, CSV_KIND), (md_path, MARKDOWN_KIND), (curves_path, CURVES_CSV_KIND)):
        ensure_replaceable(path, kind)
    selection = select_runs(records)
    tables = [
        table_view(frame, selection, root, pca=pca, thumbnails=thumbnails) for _, frame in selection.frame.groupby("group", sort=False)
    ]
    manifests = read_manifests(root)
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    shown = list(selection.frame["record"])
    n_random = sum(t.n_random for t in tables)
    context = {
        "title": "featx report",
        "generated": generated,
        "featx_version": __version__,
        "tables": tables,
        "n_runs": len(shown),
        "n_random": n_random,
        "random_labels": sorted({row.label for t in tables for row in t.rows if row.random and not row.contrast}),
        "manifests": manifests,
        "provenance": provenance(shown, command=command or _default_command(reports_dir, out), generated=generated),
        "reports_dir": str(root),
        "skipped": [{"file": str(item.path.relative_to(root)), "reason": item.reason} for item in scan.skipped],
    }
    curves = curves_frame(scan_curves(root))
    context["curves"] = curves_views(curves) if len(curves) else []
    html = render(context)
    if len(curves):
        atomic_write_text(curves_path, curves.to_csv(index=False), kind=CURVES_CSV_KIND)
    atomic_write_text(csv_path, comparison_frame(selection).to_csv(index=False), kind=CSV_KIND)
    atomic_write_text(md_path, comparison_markdown(tables, generated=generated), kind=MARKDOWN_KIND)
    atomic_write_text(html_path, html, kind=PAGE_KIND)
    log.info("report: %d run(s) in %d table(s): %s", len(shown), len(tables), html_path)
    return ReportFiles(html_path, csv_path, md_path, len(shown), len(tables), n_random > 0, tuple(scan.skipped))


def _default_command(reports_dir: str | os.PathLike[str] | None, out: str | os.PathLike[str] | None) -> str:
    parts = ["featx", "report"]
    if reports_dir is not None:
        parts += ["--reports-dir", str(reports_dir)]
    if out is not None:
        parts += ["--out", str(out)]
    return shlex.join(parts)


def render(context: Mapping[str, Any]) -> str:
    """The page from the Jinja2 template (autoescaped: record text never becomes markup)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("featx.reporting", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = pct
    env.filters["pp"] = pp
    return env.get_template(TEMPLATE).render(**context)


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of a frame of strings (``|`` in cells escaped), index dropped."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def comparison_markdown(tables: Sequence[TableView], *, generated: str) -> str:
    """The comparison tables as Markdown: test accuracy (best in bold), CV mean ± std, best params."""
    parts = [
        f"# featx comparison\n\nTest accuracy (≈: tied with the best; in brackets its 95% interval), then CV accuracy (mean ± std over the folds) and the chosen parameters. "
        f"Generated {generated} by featx {__version__}.\n"
    ]
    for table in tables:
        data = {
            "backbone": [
                row.label + (" (random weights: contrast)" if row.contrast else " ⚠ RANDOM WEIGHTS" if row.random else "")
                for row in table.rows
            ]
        }
        for index, column in enumerate(table.columns):
            values = []
            for row in table.rows:
                c = row.cells[index]
                if c is None:
                    values.append("-")
                    continue
                test = f"**{pct(c.test)}**" if c.best else f"{pct(c.test)} ≈" if c.tied else pct(c.test)
                interval = f" [{pp(c.ci[0])}, {pp(c.ci[1])}]" if c.ci else ""
                folds = f", {c.folds}-fold" if table.folds_note else ""
                values.append(f"{test}{interval} (CV {pp(c.cv_mean)} ± {pp(c.cv_std)}{folds}; {c.params})")
            data[column] = values
        parts.append(f"## {table.title}\n\n{table.subtitle}\n\n{markdown_table(pd.DataFrame(data))}\n\n{table.best}\n\n{table.ties_note}\n")
        if table.folds_note:
            parts.append(f"⚠ {table.folds_note}\n")
        if table.transfer:
            parts.append(
                "What transfer learning buys (best test accuracy of each row):\n\n" + "".join(f"* {line}\n" for line in table.transfer)
            )
        if table.n_random:
            parts.append(
                "⚠ Rows marked RANDOM WEIGHTS used randomly initialised backbones, not pretrained ones: "
                "their numbers show the pipeline working, not what pretrained features can do.\n"
            )
    return "\n".join(parts)

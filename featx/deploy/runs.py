"""Which fitted run: a run record file, a run key, or ``best``.

* a path to a run record (``reports/runs/<dataset>/...json``) or to its model file
  (``.joblib``), or a record file relative to the reports root;
* a run key (the record's ``run_key``, 16 hex digits, as ``featx fit --json`` prints it
  and every record file name ends with), or a unique prefix of one (at least 4 digits);
* ``best``: the best cell of the latest report (``featx report``'s ``comparison.csv``)
  for a data set: among the report's rows for that data set, the test set with the most
  images, and in it the highest test accuracy (the first such cell on a tie, as the
  report marks it).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from featx.core import paths
from featx.core.errors import ForeignFileError, PredictError, ReportError
from featx.core.locks import exclusive
from featx.core.ownership import ensure_removable
from featx.fitting.records import MODEL_KIND, MODEL_SUFFIX, RECORD_KIND, RECORD_SUFFIX, RUNS_DIR, RunRecord, iter_records, load_record
from featx.reporting.render import CSV_FILE

BEST = "best"
_KEY = re.compile(r"^[0-9a-f]{4,}$")


@dataclass(frozen=True)
class ResolvedRun:
    """A run found: its record and where the record file is (its model is beside it).

    Attributes:
        record: the run record.
        path: the record file.
        how: how it was found, in words (for the log).
    """

    record: RunRecord
    path: Path
    how: str

    @property
    def model_path(self) -> Path:
        """The fitted Pipeline beside the record."""
        return self.path.with_suffix(MODEL_SUFFIX)


def resolve_run(
    run: str | os.PathLike[str], *, reports_dir: str | os.PathLike[str] | None = None, dataset: str | None = None
) -> ResolvedRun:
    """Find a fitted run.

    Args:
        run: a record file (or its ``.joblib``), a record file relative to the reports
            root, a run key or a unique prefix of one, or ``best``.
        reports_dir: reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
        dataset: with ``best``, the data set whose best cell is wanted (needed when the
            report holds several).

    Returns:
        The :class:`ResolvedRun`.

    Raises:
        PredictError: nothing matches, a key prefix matches several runs, or the report
            names a record that is gone.
        ReportError: the record file is unreadable or not a run record.
    """
    root = paths.reports_dir(reports_dir)
    text = os.fspath(run).strip()
    if text == BEST:
        return best_run(root, dataset=dataset)
    given = Path(text).expanduser()
    for candidate in (given, root / given):
        if candidate.is_file() and candidate.suffix in (RECORD_SUFFIX, MODEL_SUFFIX):
            record_path = candidate.with_suffix(RECORD_SUFFIX)
            return ResolvedRun(load_record(record_path), record_path, f"record {record_path}")
    if given.exists():
        raise PredictError(f"{given} is not a run record (.json) nor a fitted model (.joblib) of `featx fit`")
    if _KEY.match(text.lower()):
        return _by_key(text.lower(), root)
    raise PredictError(
        f"no run {text!r}: give a run record file (reports/runs/<dataset>/...json), a run key (as `featx fit --json` prints it), "
        f"or `best` (the best cell of the latest `featx report`); none of these matched under {root}"
    )


def _by_key(prefix: str, root: Path) -> ResolvedRun:
    found = {record.run_key: record for record in iter_records(root) if record.run_key.startswith(prefix)}
    if not found:
        raise PredictError(f"no run record under {root / 'runs'} has a run key starting with {prefix!r}; `featx report` lists the runs")
    if len(found) > 1:
        keys = ", ".join(sorted(found)[:6])
        raise PredictError(f"run key prefix {prefix!r} matches {len(found)} runs ({keys}); give more digits")
    record = next(iter(found.values()))
    return ResolvedRun(record, record.path(root), f"run key {record.run_key}")


def best_run(root: Path, *, dataset: str | None = None) -> ResolvedRun:
    """The best cell of the latest report under ``root`` (see the module's doc).

    Raises:
        PredictError: no report, no row for ``dataset``, several data sets and none
            chosen, or the report's record is gone.
    """
    table = root / CSV_FILE
    try:
        with open(table, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise PredictError(
            f"`best` is the best cell of the latest report, and there is none ({table} is missing): run `featx report` first, "
            "or give a run record or run key"
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PredictError(f"cannot read the report's table {table}: {error}") from None
    needed = {"dataset", "n_test", "test_accuracy", "record_file"}
    if rows and not needed <= set(rows[0]):
        raise PredictError(f"{table} is not a featx comparison table (it lacks {', '.join(sorted(needed - set(rows[0])))})")
    datasets = sorted({row["dataset"] for row in rows})
    if dataset is None and len(datasets) > 1:
        raise PredictError(
            f"the latest report compares runs on {len(datasets)} data sets ({', '.join(datasets)}); choose one with --dataset"
        )
    chosen = dataset if dataset is not None else (datasets[0] if datasets else "")
    candidates = [row for row in rows if row["dataset"] == chosen]
    if not candidates:
        raise PredictError(f"the latest report ({table}) has no run on data set {chosen!r}; it has: {', '.join(datasets) or 'none'}")
    try:
        largest = max(int(row["n_test"]) for row in candidates)
        candidates = [row for row in candidates if int(row["n_test"]) == largest]
        best = max(candidates, key=lambda row: float(row["test_accuracy"]))  # max keeps the first of equals
    except ValueError as error:
        raise PredictError(f"{table} holds a malformed row ({error})") from None
    record_path = root / best["record_file"]
    if not record_path.is_file():
        raise PredictError(f"the latest report's best run {best['record_file']} is no longer under {root}: run `featx report` again")
    try:
        record = load_record(record_path)
    except ReportError as error:
        raise PredictError(f"the latest report's best run cannot be read: {error}") from None
    how = f"best of the latest report on {chosen}: {best.get('backbone', record.features.backbone)} + {best.get('classifier', record.clf)}, test accuracy {float(best['test_accuracy']):.4f}"
    return ResolvedRun(record, record_path, how)


def remove_run(run: str | os.PathLike[str], *, reports_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Delete a fitted run: its record and its model, as ``featx fit`` wrote them.

    Only featx's own files are deleted: the record must lie under ``<reports>/runs/`` and
    both files must be what featx writes there (:mod:`featx.core.ownership`); the record's
    lock is taken without waiting, so a run being saved is never pulled from under its
    writer. The report is not rewritten (run ``featx report`` again).

    Args:
        run: a record file (or its ``.joblib``) or a run key (or a unique prefix of one).
        reports_dir: reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).

    Returns:
        The files deleted.

    Raises:
        PredictError: nothing matches, or the key prefix matches several runs.
        ForeignFileError: the record lies outside the reports root's runs, or a file in
            its place was not written by featx; nothing is deleted.
        BusyError: another featx process is saving it.
    """
    root = paths.reports_dir(reports_dir)
    if os.fspath(run).strip() == BEST:
        raise PredictError("`best` is for predict and export; give the run record or run key to remove")
    found = resolve_run(run, reports_dir=root)
    runs = (root / RUNS_DIR).resolve()
    record_path = found.path
    if record_path.resolve().parent.parent != runs:
        raise ForeignFileError(
            f"refusing to remove {record_path}: it is not a run record under {runs} (pass --reports-dir when the runs are elsewhere)"
        )
    files = [(record_path, RECORD_KIND), (found.model_path, MODEL_KIND)]
    removed = []
    with exclusive(record_path, wait=False):
        for path, kind in files:
            ensure_removable(path, kind)
        for path, _ in files:
            if os.path.lexists(path):
                path.unlink()
                removed.append(path)
    return removed

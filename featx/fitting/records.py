"""Run records: one JSON file per ``featx fit`` run, with the fitted model beside it.

Layout under the reports root (``reports/`` or ``FEATX_REPORTS_DIR``)::

    runs/<dataset>/<backbone>__<features key>__<clf>__<run key>.json     the record
    runs/<dataset>/<backbone>__<features key>__<clf>__<run key>.joblib   the fitted Pipeline

The run key is a hash of everything that changes the numbers (what the features are,
by their checksums, not the key their file claims; the classifier and its fixed
parameters, grid, folds, scaling, PCA, seed), so the same request maps to the same files
and an up-to-date record can be found without fitting (:func:`existing_record`). The model is written first and the record last, both
atomically and under a lock (two runs saving the same record take turns): a record on
disk always has its model, and carries the model file's sha256 (``model_sha256``).
A joblib file is a pickle, and unpickling runs code: :func:`load_model` loads only a
model whose file still has the checksum its record was written with. The schema is
documented in the README ("Run records"); :data:`SCHEMA_VERSION` changes when a field
changes meaning (a new optional field does not change it). A record is checked field by
field when it is read (types, and the shapes that must agree with its class list): one
that fails is skipped with its file named (:func:`scan_records`), never half-used.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featx.cache.layout import EntryName
from featx.cache.reader import CacheInfo
from featx.core import paths
from featx.core.atomic import atomic_path, atomic_write_text
from featx.core.console import quote, shorten
from featx.core.errors import ReportError
from featx.core.faults import fault_point
from featx.core.hashing import file_sha256, jsonable, short_hash
from featx.core.locks import exclusive
from featx.core.ownership import FileKind, json_with, starts_with
from featx.core.paths import safe_name
from featx.core.schema import format_location

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RUNS_DIR = "runs"
RECORD_SUFFIX = ".json"
MODEL_SUFFIX = ".joblib"
#: a run record as featx writes it: a JSON object with these fields
RECORD_KIND = FileKind("run record", json_with("schema_version", "run_key", "record_file"))
#: a fitted model as featx writes it (``joblib.dump``, uncompressed): a pickle
MODEL_KIND = FileKind("fitted model (joblib)", starts_with(b"\x80"))


def run_key(identity: Mapping[str, Any]) -> str:
    """Hash of a run's identity (16 hex characters); key order does not matter."""
    return short_hash({**identity, "schema_version": SCHEMA_VERSION})


def source_names(info: CacheInfo) -> tuple[str, str]:
    """``(dataset, backbone)`` of a feature file: its attributes, else its folder and file name.

    Files written by other tools may lack the attributes: ``<folder>/<name>__<key>.h5``
    gives dataset ``<folder>`` and backbone ``<name>``.
    """
    dataset = str(info.attrs.get("dataset") or info.path.parent.name)
    backbone = str(info.attrs.get("backbone") or EntryName.of(info.path).backbone)
    return dataset, backbone


def run_stem(*, dataset: str, backbone: str, features_key: str, clf: str, key: str) -> str:
    """``runs/<dataset>/<backbone>__<features key>__<clf>__<run key>``, relative to the reports root."""
    return f"{RUNS_DIR}/{safe_name(dataset)}/{safe_name(backbone)}__{safe_name(features_key)}__{safe_name(clf)}__{key}"


@dataclass(frozen=True)
class GridPointScore:
    """Cross-validation result of one grid point.

    Attributes:
        params: estimator parameters of the point, e.g. ``{"C": 0.01}``.
        mean, std: accuracy over the folds (population std, as GridSearchCV reports it).
        fold_scores: accuracy on each fold, in fold order.
        rank: 1 for the best mean; ties share the smaller rank (GridSearchCV's ``rank_test_score``).
    """

    params: dict[str, Any]
    mean: float
    std: float
    fold_scores: list[float]
    rank: int


@dataclass(frozen=True)
class ClassScore:
    """Test-split scores of one class."""

    index: int
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ConfusedPair:
    """A pair of classes the model mixes up on the test split.

    Attributes:
        true, predicted: class names.
        count: test images of ``true`` predicted as ``predicted``.
        share: ``count`` over the test images of ``true``.
    """

    true: str
    predicted: str
    count: int
    share: float


@dataclass(frozen=True)
class FeatureSource:
    """Which features a run used and how they were made (from the cache file's attributes).

    Attributes:
        path: the .h5 file as given to the run.
        key: the cache key of the file.
        dataset, backbone, weights: identity (``weights`` may be None for foreign files).
        feature_dim: columns of the feature matrix.
        n_train, n_test: rows of each split.
        attrs: every root attribute of the file except ``class_names`` (input size,
            mean, std, interpolation, precision, timm/torch versions, created, ...).
        splits: per split: ``n_rows``, ``seconds``, ``images_per_second``, ``device``.
        content: what the features are: :func:`featx.cache.layout.content_key` of the
            splits' checksums (None in records written before it was recorded).
    """

    path: str
    key: str
    dataset: str
    backbone: str
    weights: str | None
    feature_dim: int
    n_train: int
    n_test: int
    attrs: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    content: str | None = None

    @property
    def identity(self) -> str:
        """What tells these features from others in the report: the key of their file and
        what they are (their content key; records written before it was recorded have the
        key alone). An edited copy of an entry keeps its key but not its content."""
        return f"{self.key}:{self.content}" if self.content else self.key


@dataclass(frozen=True)
class RunRecord:
    """Everything one ``featx fit`` run found, and how (see the README for the schema)."""

    run_key: str
    created: str
    featx_version: str
    clf: str
    estimator: str
    estimator_params: dict[str, Any]
    pipeline: list[str]
    features: FeatureSource
    class_names: list[str]
    cv: int
    scale: str
    pca: int | None
    seed: int
    grid: dict[str, list[Any]]
    cv_results: list[GridPointScore]
    best_params: dict[str, Any]
    cv_best_score: float
    cv_best_std: float
    test_accuracy: float
    top5_accuracy: float | None
    macro_f1: float
    per_class: list[ClassScore]
    confusion_matrix: list[list[int]]
    read_seconds: float
    search_seconds: float
    fit_seconds: float
    predict_seconds: float
    total_seconds: float
    n_jobs: int
    record_file: str
    model_file: str
    warnings: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    model_sha256: str | None = None
    solver: str = "sklearn"
    solver_info: dict[str, Any] = field(default_factory=dict)
    # since issue 13 (None or empty in older records)
    test_accuracy_ci95: list[float] | None = None
    ci_method: str | None = None
    balanced_accuracy: float | None = None
    log_loss: float | None = None
    search: str = "grid"
    search_info: dict[str, Any] = field(default_factory=dict)
    confused_pairs: list[ConfusedPair] = field(default_factory=list)
    misclassified: list[list[int]] | None = None  # [test row, true, predicted] per wrong test image
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON types."""
        return jsonable(dataclasses.asdict(self))

    def to_json(self) -> str:
        """The record as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Rebuild a record from :meth:`to_dict` output (or the JSON of a record file),
        checking every field's type and that the per-class results match the class list.

        Raises:
            ReportError: another schema version, fields missing or unknown, a value of the
                wrong type or shape (the message names the field).
        """
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ReportError(
                f"run record has schema version {quote(version)}, this featx reads version {SCHEMA_VERSION}; fit again to refresh it"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in data and _required(cls, n))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise ReportError(
                f"malformed run record: missing {missing or 'nothing'}, unknown {shorten(str(unknown)) if unknown else 'nothing'}"
            )
        from pydantic import ValidationError

        try:
            record: RunRecord = _adapter().validate_json(json.dumps(jsonable(data)), strict=True)
        except ValidationError as error:
            detail = error.errors(include_url=False)[0]
            where = format_location(detail["loc"]) or "record"
            raise ReportError(f"malformed run record: {where}: {shorten(detail['msg'])}, got {quote(detail.get('input'))}") from None
        problem = record._inconsistency()
        if problem:
            raise ReportError(f"malformed run record: {problem}")
        return record

    def _inconsistency(self) -> str | None:
        """What disagrees inside the record (shapes against the class list, scores out of range), or None."""
        n_classes = len(self.class_names)
        if len(self.confusion_matrix) != n_classes or any(len(row) != n_classes for row in self.confusion_matrix):
            return f"confusion_matrix is not {n_classes} x {n_classes}, one row and column per name in class_names"
        if len(self.per_class) != n_classes:
            return f"per_class has {len(self.per_class)} rows for {n_classes} class_names"
        if not self.cv_results:
            return "cv_results is empty"
        for split, facts in self.features.splits.items():
            for name in ("n_rows", "seconds", "images_per_second"):
                value = facts.get(name)
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    return f"features.splits.{split}.{name} is {quote(value)}, not a number"
        for name in ("test_accuracy", "cv_best_score", "macro_f1", "top5_accuracy", "balanced_accuracy"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                return f"{name} is {value}, not a fraction between 0 and 1"
        ci = self.test_accuracy_ci95
        if ci is not None and (len(ci) != 2 or not 0.0 <= ci[0] <= ci[1] <= 1.0):
            return f"test_accuracy_ci95 is {ci}, not [low, high] within [0, 1]"
        if self.search not in ("grid", "random"):
            return f"search is {quote(self.search)}, not grid or random"
        rows = self.features.n_test
        for item in self.misclassified or ():
            if len(item) != 3 or not 0 <= item[0] < rows or not all(0 <= c < n_classes for c in item[1:]):
                return f"misclassified holds {item}, not [test row < {rows}, true, predicted class index]"
        return None

    def test_errors(self) -> np.ndarray | None:
        """Boolean ``(n_test,)`` mask of the test images this run gets wrong, or None when
        the record does not list them (written by an older featx)."""
        if self.misclassified is None:
            return None
        mask = np.zeros(self.features.n_test, dtype=bool)
        mask[[row for row, _, _ in self.misclassified]] = True
        return mask

    def path(self, reports_dir: str | os.PathLike[str] | None = None) -> Path:
        """Where this record lives under the reports root."""
        return paths.reports_dir(reports_dir) / self.record_file

    def model_path(self, reports_dir: str | os.PathLike[str] | None = None) -> Path:
        """Where this run's fitted Pipeline lives under the reports root."""
        return paths.reports_dir(reports_dir) / self.model_file

    def __repr__(self) -> str:  # short: backbone, classifier, best params, test accuracy (featx.fitting.display)
        from featx.fitting.display import run_repr

        return run_repr(self)

    def _repr_html_(self) -> str:
        from featx.fitting.display import run_html

        return run_html(self)


def _adapter() -> Any:
    """The pydantic validator of :class:`RunRecord` (built once, when a record is first read)."""
    global _ADAPTER
    if _ADAPTER is None:
        from pydantic import TypeAdapter

        _ADAPTER = TypeAdapter(RunRecord)
    return _ADAPTER


_ADAPTER: Any = None


def _required(cls: type, name: str) -> bool:
    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def save_run(record: RunRecord, model: Any, reports_dir: str | os.PathLike[str] | None = None) -> RunRecord:
    """Write the model (joblib), then the record (JSON) with the model's sha256, each
    atomically, holding the record's lock (another process saving the same record waits).

    Returns:
        The record as written (``model_sha256`` set); ``record.path(reports_dir)`` and
        ``record.model_path(reports_dir)`` are its files.

    Raises:
        WriteError: the reports folder is not writable or the disk is full. An earlier
            record of the same run stays; should its model have been replaced already,
            the checksum tells, and the run counts as not fitted.
    """
    import joblib

    record_path, model_path = record.path(reports_dir), record.model_path(reports_dir)
    with exclusive(record_path, on_wait=lambda: log.info("another featx process is saving %s; waiting for it", record_path.name)):
        fault_point("records.locked")
        with atomic_path(model_path, kind=MODEL_KIND) as tmp:
            joblib.dump(model, tmp)
            saved = dataclasses.replace(record, model_sha256=file_sha256(tmp))
        atomic_write_text(record_path, saved.to_json(), kind=RECORD_KIND)
    return saved


def load_record(path: str | os.PathLike[str]) -> RunRecord:
    """Read one run record, checked field by field (:meth:`RunRecord.from_dict`).

    Raises:
        ReportError: unreadable, not JSON, not a record of this schema, or a field of the
            wrong type or shape; the message names the file.
    """
    file_path = Path(path)
    try:
        if not file_path.is_file():
            raise OSError(f"{file_path} is not a regular file")
        data = json.loads(file_path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as error:
        raise ReportError(f"cannot read run record {file_path}: {shorten(str(error))}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{file_path} is not a run record (a JSON object)")
    try:
        return RunRecord.from_dict(data)
    except ReportError as error:
        raise ReportError(f"{file_path}: {error}") from None


def load_model(record: RunRecord | str | os.PathLike[str], reports_dir: str | os.PathLike[str] | None = None) -> Any:
    """The fitted Pipeline of a run (from its record, or the path of its record or model file).

    A joblib file is a pickle, and unpickling runs whatever code the file names: featx
    unpickles only a model file whose sha256 is the one its record was written with
    (``model_sha256``), so a file replaced or edited after ``featx fit`` wrote it is
    refused before any of it runs. (The checksum guards against a swapped file, not
    against someone who can rewrite the record too: keep the reports folder yours.)

    Raises:
        ReportError: the record or the model file is missing or unreadable, the record
            carries no checksum, or the model file does not match it.
    """
    import joblib

    if isinstance(record, RunRecord):
        model_path = record.model_path(reports_dir)
    else:
        given = Path(record)
        model_path = given.with_suffix(MODEL_SUFFIX)
        record = load_record(given.with_suffix(RECORD_SUFFIX))
    if not model_path.exists():
        raise ReportError(f"model file not found: {model_path}")
    problem = model_problem(record, model_path)
    if problem:
        raise ReportError(
            f"{problem}; featx will not unpickle it (a joblib file runs code when loaded): fit again to write a model featx can vouch for"
        )
    return joblib.load(model_path)


def model_problem(record: RunRecord, model_path: Path) -> str | None:
    """Why ``model_path`` cannot be trusted as ``record``'s model, or None when its sha256 matches."""
    if not record.model_sha256:
        return f"the record of {model_path.name} carries no model checksum (written by another tool or an older featx)"
    try:
        actual = file_sha256(model_path)
    except OSError as error:
        return f"cannot read {model_path} ({error.strerror or error})"
    if actual != record.model_sha256:
        return f"{model_path} is not the model its record was written with (its sha256 differs)"
    return None


def existing_record(record_file: str, key: str, reports_dir: str | os.PathLike[str] | None = None) -> RunRecord | None:
    """The up-to-date record at ``record_file`` (relative to the reports root), or None.

    Up to date: it loads with this schema, carries ``key``, and its model file exists
    with the checksum the record was written with.
    """
    path = paths.reports_dir(reports_dir) / record_file
    if not path.exists():
        return None
    try:
        record = load_record(path)
    except ReportError as error:
        log.info("ignoring %s: %s", path, error)
        return None
    model_path = record.model_path(reports_dir)
    if record.run_key != key or not model_path.exists():
        return None
    problem = model_problem(record, model_path)
    if problem:
        log.warning("fitting again: %s", problem)
        return None
    return record


@dataclass(frozen=True)
class SkippedRecord:
    """A file under ``runs/`` that is not a readable run record, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class RecordScan:
    """Every run record under a reports root: those read, and the files skipped."""

    records: list[RunRecord]
    skipped: list[SkippedRecord]


def scan_records(reports_dir: str | os.PathLike[str] | None = None) -> RecordScan:
    """Read every run record under ``<reports>/runs/``, sorted by path.

    A file that is not a valid record of this schema (unreadable, truncated, another
    schema version, a field of the wrong type) is skipped, logged with its name, and
    listed in :attr:`RecordScan.skipped` (the report shows them).
    """
    root = paths.reports_dir(reports_dir) / RUNS_DIR
    records, skipped = [], []
    for path in sorted(root.glob(f"*/*{RECORD_SUFFIX}")):
        try:
            records.append(load_record(path))
        except ReportError as error:
            log.warning("skipping %s", error)
            skipped.append(SkippedRecord(path, str(error).removeprefix(f"{path}: ")))
    return RecordScan(records, skipped)


def iter_records(reports_dir: str | os.PathLike[str] | None = None) -> Iterator[RunRecord]:
    """Every readable run record under ``<reports>/runs/``, sorted by path; others are
    logged with their file name and skipped (:func:`scan_records` lists them)."""
    yield from scan_records(reports_dir).records

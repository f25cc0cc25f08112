"""Run records: one JSON file per ``featx fit`` run, with the fitted model beside it.

Layout under the reports root (``reports/`` or ``FEATX_REPORTS_DIR``)::

    runs/<dataset>/<backbone>__<features key>__<clf>__<run key>.json     the record
    runs/<dataset>/<backbone>__<features key>__<clf>__<run key>.joblib   the fitted Pipeline

The run key is a hash of everything that changes the numbers (features key, classifier
and its fixed parameters, grid, folds, scaling, PCA, seed), so the same request maps to
the same files and an up-to-date record can be found without fitting
(:func:`existing_record`). The model is written first and the record last, both
atomically and under a lock (two runs saving the same record take turns): a record on
disk always has its model, and carries the model file's sha256 (``model_sha256``).
A joblib file is a pickle, and unpickling runs code: :func:`load_model` loads only a
model whose file still has the checksum its record was written with. The schema is
documented in the README ("Run records"); :data:`SCHEMA_VERSION` changes when a field
changes meaning (a new optional field does not change it).
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

from featx.cache.layout import EntryName
from featx.cache.reader import CacheInfo
from featx.core import paths
from featx.core.atomic import atomic_path, atomic_write_text
from featx.core.errors import ReportError
from featx.core.faults import fault_point
from featx.core.hashing import file_sha256, jsonable, short_hash
from featx.core.locks import exclusive
from featx.core.paths import safe_name

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RUNS_DIR = "runs"
RECORD_SUFFIX = ".json"
MODEL_SUFFIX = ".joblib"


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
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON types."""
        return jsonable(dataclasses.asdict(self))

    def to_json(self) -> str:
        """The record as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Rebuild a record from :meth:`to_dict` output.

        Raises:
            ReportError: another schema version, or fields missing or unknown.
        """
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ReportError(
                f"run record has schema version {version}, this featx reads version {SCHEMA_VERSION}; fit again to refresh it"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in data and _required(cls, n))
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise ReportError(f"malformed run record: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
        values = dict(data)
        values["features"] = FeatureSource(**data["features"])
        values["cv_results"] = [GridPointScore(**point) for point in data["cv_results"]]
        values["per_class"] = [ClassScore(**row) for row in data["per_class"]]
        return cls(**values)

    def path(self, reports_dir: str | os.PathLike[str] | None = None) -> Path:
        """Where this record lives under the reports root."""
        return paths.reports_dir(reports_dir) / self.record_file

    def model_path(self, reports_dir: str | os.PathLike[str] | None = None) -> Path:
        """Where this run's fitted Pipeline lives under the reports root."""
        return paths.reports_dir(reports_dir) / self.model_file


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
        with atomic_path(model_path) as tmp:
            joblib.dump(model, tmp)
            saved = dataclasses.replace(record, model_sha256=file_sha256(tmp))
        atomic_write_text(record_path, saved.to_json())
    return saved


def load_record(path: str | os.PathLike[str]) -> RunRecord:
    """Read one run record.

    Raises:
        ReportError: unreadable, not JSON, or not a record of this schema.
    """
    file_path = Path(path)
    try:
        data = json.loads(file_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ReportError(f"cannot read run record {file_path}: {error}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{file_path} is not a run record")
    try:
        return RunRecord.from_dict(data)
    except (TypeError, KeyError) as error:
        raise ReportError(f"malformed run record {file_path}: {error}") from None


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


def iter_records(reports_dir: str | os.PathLike[str] | None = None) -> Iterator[RunRecord]:
    """Every readable run record under ``<reports>/runs/``, sorted by path; others are logged and skipped."""
    root = paths.reports_dir(reports_dir) / RUNS_DIR
    for path in sorted(root.glob(f"*/*{RECORD_SUFFIX}")):
        try:
            yield load_record(path)
        except ReportError as error:
            log.warning("skipping %s", error)

"""featx unpickles only models it wrote: a run record carries its model file's sha256,
checked before ``joblib.load`` runs any of the file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import featx
from featx.core.errors import ReportError
from featx.fitting.records import file_sha256, load_model, load_record

MARKER = "featx-pwned-marker"


class Payload:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.target, "ran"))


@pytest.fixture
def record(feature_file):
    path = feature_file(n_train=40, n_test=20, dim=8)
    return featx.fit(path, clf="logreg", grid={"C": [1.0]}, cv=2, n_jobs=1)


def test_a_record_carries_its_model_checksum_and_loads(record) -> None:
    assert record.model_sha256 == file_sha256(record.model_path())
    assert load_record(record.path()).model_sha256 == record.model_sha256
    for handle in (record, record.path(), record.model_path()):
        assert load_model(handle).predict is not None


def test_a_swapped_model_file_is_refused_before_it_runs(record, tmp_path: Path) -> None:
    marker = tmp_path / MARKER
    record.model_path().write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ReportError, match="not the model its record was written with"):
        load_model(record)
    assert not marker.exists()


def test_a_record_without_a_checksum_is_refused(record) -> None:
    data = json.loads(record.path().read_text())
    del data["model_sha256"]
    record.path().write_text(json.dumps(data))
    with pytest.raises(ReportError, match="carries no model checksum"):
        load_model(record.path())


def test_skip_existing_refits_when_the_model_file_changed(record, feature_file) -> None:
    record.model_path().write_bytes(record.model_path().read_bytes() + b"\0")
    again = featx.fit(record.features.path, clf="logreg", grid={"C": [1.0]}, cv=2, n_jobs=1, skip_existing=True)
    assert again.created >= record.created and again.model_sha256 == file_sha256(again.model_path())
    assert load_model(again) is not None

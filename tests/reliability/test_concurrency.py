"""Two featx processes at once, interleaved deterministically: the first stops itself
(SIGSTOP at a fault point) while holding a lock, the second starts, and only once the
second says it is waiting does the first continue.

* ``featx extract`` twice for the same key: one computes, the other waits and reuses the
  result (a cache hit: no second extraction), and the file verifies.
* ``featx fit`` twice, for the same record or different ones: every record loads and
  its model matches the checksum it was written with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from featx.cache import verify_file
from featx.fitting.records import iter_records, load_model
from tests.reliability.support import TINY_ARGS, Running, processes


def test_two_extractions_of_one_key_compute_once() -> None:
    with processes() as running:
        running.append(Running("extract", *TINY_ARGS, fault="extract.locked:1:stop"))
        running[0].wait_stopped()
        running.append(Running("extract", *TINY_ARGS))
        running[1].wait_for("waiting for it")
        (code_1, out_1, err_1), (code_2, out_2, err_2) = (r.finish() for r in running)
    assert code_1 == 0 and code_2 == 0, err_1 + err_2
    assert out_1 == out_2 and Path(out_1.strip()).is_file()
    assert "wrote" in err_1 and "images/s" in err_1
    assert "cache hit" in err_2 and "images/s" not in err_2 and "wrote" not in err_2  # no second extraction
    assert verify_file(Path(out_1.strip())) == []


FIT = ["fit", "--dataset", "synthetic", "--cv", "2", "--n-jobs", "1"]


@pytest.mark.parametrize("second_clf", ["logreg", "knn"], ids=["same record", "different records"])
def test_two_fits_writing_records_at_once_leave_both_intact(feature_file, second_clf: str) -> None:
    path = feature_file(n_train=40, n_test=20, dim=8)
    # the first stops with its model written under a temporary name; the second then
    # saves a record of its own (or waits for the lock of the same record)
    same = second_clf == "logreg"
    with processes() as running:
        running.append(
            Running(
                *FIT,
                "--features",
                str(path),
                "--clf",
                "logreg",
                "--C-grid",
                "1",
                fault="records.locked:1:stop" if same else "atomic.before_replace:1:stop",
            )
        )
        running[0].wait_stopped()
        running.append(Running(*FIT, "--features", str(path), "--clf", second_clf, *(["--C-grid", "1"] if same else ["--k-grid", "1,3"])))
        if same:  # the second waits for the first's lock on the record
            running[1].wait_for("another featx process is saving")
        else:  # the second saves its record while the first is stopped
            assert running[1].finish()[0] == 0
        (code_1, _, err_1), (code_2, _, err_2) = (r.finish() for r in running)
    assert code_1 == 0 and code_2 == 0, err_1 + err_2
    records = list(iter_records())
    assert sorted(r.clf for r in records) == sorted({"logreg", second_clf})
    for record in records:
        assert record.model_sha256 and load_model(record) is not None

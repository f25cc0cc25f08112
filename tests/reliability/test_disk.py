"""A full disk and an unwritable folder: one clear error line, exit status 2, and what
was there before (the cache entry, the run record and model, the report) untouched.

A full disk is simulated deterministically: ``FEATX_FAULT=<point>:<n>:enospc`` makes the
write at that point fail with ``ENOSPC`` (see :mod:`featx.core.faults`), and once for real,
with a file size limit (``RLIMIT_FSIZE``) that makes the kernel refuse the write.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pandas
import pytest
from click.testing import CliRunner

import featx
from featx.cli import main
from featx.core import faults
from featx.fitting.records import iter_records, load_model
from tests.reliability.support import TINY, TINY_ARGS, TINY_DATA, assert_one_line_error, featx_env


@pytest.fixture(autouse=True)
def _fresh_fault_counts() -> None:
    faults._hits.clear()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def invoke(*args: str, fault: str | None = None) -> object:
    env = {"FEATX_FAULT": fault} if fault else {}
    return CliRunner().invoke(main, list(args), env=env)


@pytest.mark.parametrize(
    "fault", ["cache.rows_flushed:2:enospc", "cache.rows_written:4:enospc", "cache.split_complete:1:enospc", "cache.before_rename:1:enospc"]
)
def test_disk_full_while_recomputing_leaves_the_cached_entry_untouched(fault: str) -> None:
    path = featx.extract(TINY_DATA, backbone="test_resnet", **TINY)
    before = digest(path)
    result = invoke("extract", *TINY_ARGS, "--force", fault=fault)
    assert_one_line_error(result, "No space left on device", "free some space")
    assert digest(path) == before
    assert featx.load_features(path, "train")[0].shape == (40, 96)


def test_a_write_the_kernel_refuses_is_one_line_and_leaves_other_entries_alone(tmp_path: Path) -> None:
    other = featx.extract(TINY_DATA, backbone="test_resnet", **{**TINY, "limit": 10})
    before = digest(other)

    def small_files() -> None:  # the child may write files of 20 kB at most
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    result = subprocess.run(
        [sys.executable, "-m", "featx", "extract", *TINY_ARGS],
        env=featx_env(),
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=small_files,
    )
    assert_one_line_error(result, "cannot write", "file size limit", "run the command again")
    assert digest(other) == before


def test_an_unwritable_cache_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("extract", *TINY_ARGS, "--cache-dir", str(blocker / "features"))
    assert_one_line_error(result, "not writable", "--cache-dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_a_read_only_cache_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = invoke("extract", *TINY_ARGS, "--cache-dir", str(folder))
    finally:
        folder.chmod(0o755)
    assert_one_line_error(result, "not writable")


def fit_args(path: Path) -> list[str]:
    return ["fit", "--features", str(path), "--clf", "logreg", "--C-grid", "1", "--cv", "2", "--n-jobs", "1"]


@pytest.mark.parametrize("fault", ["atomic.before_replace:1:enospc", "atomic.before_replace:2:enospc"], ids=["model", "record"])
def test_disk_full_while_saving_a_run_keeps_the_earlier_record(feature_file, fault: str) -> None:
    path = feature_file(n_train=40, n_test=20, dim=8)
    assert invoke(*fit_args(path)).exit_code == 0
    (record,) = iter_records()
    before = digest(record.path()), digest(record.model_path())
    assert_one_line_error(invoke(*fit_args(path), fault=fault), "No space left on device")
    (again,) = iter_records()
    assert (digest(again.path()), digest(again.model_path())) == before and load_model(again) is not None


def test_an_unwritable_reports_folder_is_one_line(feature_file, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke(*fit_args(feature_file(n_train=40, n_test=20, dim=8)), "--reports-dir", str(blocker / "reports"))
    assert_one_line_error(result, "not writable", "--reports-dir")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_an_interrupted_report_leaves_the_previous_page(feature_file, n: int) -> None:
    """The csv, the markdown and then the page are written, each atomically: a full disk or
    a kill at the n-th leaves the previous page, and each file beside it whole."""
    assert invoke(*fit_args(feature_file(n_train=40, n_test=20, dim=8))).exit_code == 0
    assert invoke("report", "--no-pca").exit_code == 0
    reports = Path(os.environ["FEATX_REPORTS_DIR"])
    page = digest(reports / "index.html")
    assert_one_line_error(invoke("report", "--no-pca", fault=f"atomic.before_replace:{n}:enospc"), "No space left on device")
    assert digest(reports / "index.html") == page
    killed = subprocess.run(
        [sys.executable, "-m", "featx", "report", "--no-pca"],
        env=featx_env(f"atomic.before_replace:{n}"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert killed.returncode == -signal.SIGKILL
    assert digest(reports / "index.html") == page
    assert len(pandas.read_csv(reports / "comparison.csv")) == 1
    assert (reports / "comparison.md").read_text().startswith("# featx comparison") and "Best:" in (reports / "comparison.md").read_text()

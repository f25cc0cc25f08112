"""Nothing deleted that featx did not write, nothing written over it: ``featx cache rm``
(and every command that deletes) removes only the files featx wrote in its cache, checked
by their place and by their own attributes; ``featx report --out`` (and every writer)
refuses to replace a file featx did not write for that purpose. Each refusal is one line,
exit status 2, and the file is left byte for byte as it was."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import featx
from featx.cache import write_features
from featx.cli import main
from featx.core.errors import ForeignFileError
from tests.conftest import make_features
from tests.fakes import write_image
from tests.reliability.support import TINY_ARGS, assert_one_line_error

KEY = "0123456789abcdef"


def cache() -> Path:
    return Path(os.environ["FEATX_CACHE_DIR"])


def reports() -> Path:
    return Path(os.environ["FEATX_REPORTS_DIR"])


def featx_written(path: Path, key: str = KEY) -> Path:
    """A cache file written by featx (its attributes and all), anywhere."""
    return write_features(path, make_features(n_train=12, n_test=6, dim=3), class_names=["a", "b", "c"], attrs={"key": key})


def plain_hdf5(path: Path) -> Path:
    """A user's own HDF5 file: no featx attribute."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle["train/features"] = np.zeros((4, 2), dtype=np.float32)
        handle["train/labels"] = np.zeros(4, dtype=np.int64)
    return path


def text_file(path: Path, text: str = "my notes\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def refused(args: list[str], victim: Path, *expected: str) -> None:
    """``featx ARGS`` is one error line, and ``victim`` is exactly as it was."""
    before = victim.read_bytes()
    result = CliRunner().invoke(main, args)
    assert_one_line_error(result, *expected)
    assert victim.read_bytes() == before


# --------------------------------------------------------------------------- cache rm: outside the cache


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda root: featx_written(root / "results.h5"), id="a featx file in the current folder"),
        pytest.param(lambda root: plain_hdf5(root / ".." / "data" / "mydata.h5"), id="the user's HDF5 in ../data"),
        pytest.param(lambda root: text_file(root / "notes.h5"), id="a text file named notes.h5"),
        pytest.param(
            lambda root: featx_written(root / "backup" / "synthetic" / f"syn__{KEY}.h5"), id="a copy of an entry outside the cache"
        ),
    ],
)
def test_cache_rm_refuses_a_path_outside_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    victim = make(work)
    refused(["cache", "rm", os.path.relpath(victim)], victim, "refusing to remove", "not an entry of the feature cache")


# --------------------------------------------------------------------------- cache rm: inside the cache, not featx's


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda path: text_file(path), id="a text file named as an entry"),
        pytest.param(lambda path: plain_hdf5(path), id="the user's HDF5 named as an entry"),
        pytest.param(lambda path: featx_written(path, key="fedcba9876543210"), id="a featx file whose key is another entry's"),
    ],
)
def test_cache_rm_refuses_a_file_in_the_cache_that_featx_did_not_write_for_the_entry(make) -> None:
    victim = make(cache() / "synthetic" / f"syn__{KEY}.h5")
    for key in (KEY, KEY[:6], str(victim)):
        refused(["cache", "rm", key], victim, "refusing to remove", "not a feature cache file")


def test_cache_rm_refuses_a_link_in_the_cache_and_leaves_its_target(tmp_path: Path) -> None:
    target = featx_written(tmp_path / "precious" / f"syn__{KEY}.h5")
    link = cache() / "synthetic" / f"syn__{KEY}.h5"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    refused(["cache", "rm", KEY], target, "refusing to remove", "symbolic link")
    assert link.is_symlink()


def test_cache_rm_removes_featx_files_and_keeps_a_foreign_one_in_the_shard_folder(feature_file) -> None:
    entry = feature_file(key=KEY, n_train=12, n_test=6, dim=3)
    shards = entry.parent / ".shards" / entry.stem
    mine = shards / "my-notes.txt"
    text_file(mine)
    fake_shard = text_file(shards / "shard-0-of-2.h5", "not a shard")
    result = CliRunner().invoke(main, ["cache", "rm", KEY])
    assert result.exit_code == 0, result.output
    assert not entry.exists() and mine.read_text() == "my notes\n" and fake_shard.read_text() == "not a shard"


def test_cache_rm_still_removes_what_featx_wrote(feature_file) -> None:
    entry = feature_file(key=KEY, n_train=12, n_test=6, dim=3)
    partial = entry.with_name(entry.stem + ".partial.h5")
    shutil.copy(entry, partial)
    result = CliRunner().invoke(main, ["cache", "rm", KEY])
    assert result.exit_code == 0, result.output
    assert not entry.exists() and not partial.exists()


def test_the_python_api_refuses_with_a_featx_error(tmp_path: Path) -> None:
    victim = text_file(tmp_path / "notes.h5")
    with pytest.raises(ForeignFileError, match="not an entry of the feature cache"):
        featx.cache.remove_entry(str(victim))
    assert victim.exists()


# --------------------------------------------------------------------------- every other command that deletes


@pytest.mark.parametrize("force", [False, True], ids=["extract", "extract --force"])
def test_extract_never_discards_a_foreign_file_in_the_place_of_its_partial_file(force: bool) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["extract", *TINY_ARGS])
    assert first.exit_code == 0, first.output
    entry = Path(first.stdout.strip().splitlines()[-1])
    victim = text_file(entry.with_name(entry.stem + ".partial.h5"), "my partial thoughts\n")
    if not force:
        entry.unlink()  # so that the extraction must write its partial file again
    refused(["extract", *TINY_ARGS, *(["--force"] if force else [])], victim, "not a feature cache file")
    assert entry.exists() == force


# --------------------------------------------------------------------------- writers


@pytest.fixture
def record(feature_file):
    path = feature_file(key=KEY, n_train=30, n_test=15, dim=4)
    return featx.fit(path, clf="logreg", grid={"C": [1.0]}, cv=2, n_jobs=1)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(lambda record, tmp: record.path(), id="a run record"),
        pytest.param(lambda record, tmp: record.model_path(), id="a fitted model"),
        pytest.param(lambda record, tmp: write_image(tmp / "data" / "cat" / "1.png", size=(8, 8)), id="a source image"),
        pytest.param(lambda record, tmp: text_file(tmp / "notes.html", "<html>mine</html>"), id="the user's own page"),
    ],
)
def test_report_out_refuses_to_write_over_a_file_featx_did_not_write_as_a_report(record, tmp_path: Path, target) -> None:
    victim = target(record, tmp_path)
    refused(["report", "--out", str(victim)], victim, "refusing to write the report page", "not a report page written by featx")
    assert not (victim.parent / "comparison.csv").exists()  # checked before anything was written


def test_report_refuses_a_foreign_file_where_its_csv_goes_before_writing_anything(record) -> None:
    victim = text_file(reports() / "comparison.csv", "my,own,table\n")
    refused(["report"], victim, "comparison table (CSV)")
    assert not (reports() / "index.html").exists()


def test_report_out_named_like_the_files_beside_it_is_refused(record, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path / "comparison.csv")])
    assert_one_line_error(result, "--out", "comparison.csv")


def test_report_replaces_its_own_page(record) -> None:
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["report"])
        assert result.exit_code == 0, result.output


def test_fit_refuses_a_foreign_file_where_its_record_goes(feature_file) -> None:
    from featx.fitting.config import FitConfig
    from featx.fitting.protocol import plan_run

    path = feature_file(key=KEY, n_train=30, n_test=15, dim=4)
    plan = plan_run(path, FitConfig(clf="logreg", grid={"C": [1.0]}, cv=2))
    victim = text_file(reports() / plan.record_file, '{"mine": true}\n')
    refused(["fit", "--features", str(path), "--clf", "logreg", "--C-grid", "1", "--cv", "2", "--n-jobs", "1"], victim, "run record")


def test_pca_refuses_a_foreign_file_where_its_plot_goes(feature_file) -> None:
    path = feature_file(key=KEY, n_train=30, n_test=15, dim=4)
    victim = write_image(reports() / "pca" / f"synthetic__{KEY}__standard__scatter.png", size=(8, 8))
    refused(["pca", "--features", str(path)], victim, "not a plot written by featx")

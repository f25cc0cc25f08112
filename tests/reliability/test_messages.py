"""Messages that must not mislead: the recovery hint of an unreadable feature file names a
cache entry only when the file is one, what an image folder's layout leaves out is said,
and what other libraries warn about (PIL, matplotlib, timm) reaches the terminal as one
short line of featx's log, not as their raw multi-line (or multi-kilobyte) text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from featx.cache import write_features
from featx.cli import main
from tests.conftest import make_features
from tests.fakes import write_image, write_image_folder
from tests.reliability.support import ROOT, assert_one_line_error, featx_env
from tests.reliability.support import featx as run_featx

KEY = "0123456789abcdef"
FIT = ["--clf", "logreg", "--cv", "2", "--n-jobs", "1"]
#: the longest line featx writes for what another library says
SHORT = 400


def damaged(path: Path) -> Path:
    """A featx file cut to its first 3000 bytes."""
    whole = write_features(path, make_features(n_train=40, n_test=20, dim=8), class_names=["a", "b", "c"], attrs={"key": KEY})
    whole.write_bytes(whole.read_bytes()[:3000])
    return whole


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda tmp: (tmp / "features.h5").mkdir() or tmp / "features.h5", "is a folder", id="a folder named .h5"),
        pytest.param(lambda tmp: (tmp / "features").mkdir() or tmp / "features", "is a folder", id="a folder"),
        pytest.param(lambda tmp: damaged(tmp / "mine.h5"), "truncated or damaged", id="a damaged .h5 outside the cache"),
        pytest.param(lambda tmp: (tmp / "notes.h5").write_text("notes") and tmp / "notes.h5", "not an HDF5 file", id="a text file"),
    ],
)
def test_a_feature_path_that_is_no_cache_entry_is_never_told_to_cache_rm(tmp_path: Path, monkeypatch, make, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = make(tmp_path)
    line = assert_one_line_error(CliRunner().invoke(main, ["fit", "--features", str(path), *FIT]), expected)
    assert "cache rm" not in line


def test_a_damaged_entry_of_the_cache_is_told_to_cache_rm_by_its_own_key_and_that_works() -> None:
    path = damaged(Path(os.environ["FEATX_CACHE_DIR"]) / "synthetic" / f"syn__{KEY}.h5")
    assert_one_line_error(CliRunner().invoke(main, ["fit", "--features", str(path), *FIT]), f"featx cache rm {KEY}`")
    assert CliRunner().invoke(main, ["cache", "rm", KEY]).exit_code == 0 and not path.exists()


def claims_another_key(path: Path) -> None:
    import h5py

    with h5py.File(path, "r+") as handle:
        handle.attrs["key"] = "fedcba9876543210"
        handle.attrs["format_version"] = 99


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(claims_another_key, id="an entry claiming another key"),
        pytest.param(lambda path: path.write_text("my notes"), id="a text file in an entry's place"),
    ],
)
def test_the_hint_never_names_a_command_that_would_refuse(feature_file, change) -> None:
    """A file in an entry's place that featx did not write for it: `cache rm` (of its own key,
    let alone of the key it claims) and --force refuse it, so the hint must not name them."""
    path = feature_file(key=KEY, n_train=30, n_test=15, dim=4)
    change(path)
    line = assert_one_line_error(
        CliRunner().invoke(main, ["fit", "--features", str(path), *FIT]), "neither removes nor replaces it", "move it away yourself"
    )
    assert "cache rm fedcba9876543210" not in line and f"cache rm {KEY}`" not in line
    assert_one_line_error(CliRunner().invoke(main, ["cache", "rm", KEY]), "refusing to remove")
    assert path.exists()


def test_extract_refuses_a_file_of_yours_in_its_entry_s_place_before_any_work(monkeypatch) -> None:
    from featx.extraction import models
    from featx.extraction.engine import plan_extraction
    from tests.reliability.support import TINY, TINY_ARGS, TINY_DATA

    target = plan_extraction(TINY_DATA, backbone="test_resnet", **TINY).path
    target.parent.mkdir(parents=True)
    target.write_text("my notes")
    monkeypatch.setattr(models, "create_backbone", lambda *a, **k: pytest.fail("built a model for an entry it cannot write"))
    for force in ([], ["--force"]):
        result = CliRunner().invoke(main, ["extract", *TINY_ARGS, *force])
        line = assert_one_line_error(result, "refusing to write the feature cache file", str(target))
        assert "cache rm" not in result.stderr and "extracting again" not in result.stderr, result.stderr
    assert target.read_text() == "my notes", line


# --------------------------------------------------------------------------- image folders


def extract_log(root: Path) -> str:
    result = CliRunner().invoke(
        main, ["extract", "-b", "test_resnet", "--weights", "random", "--image-size", "32", "-d", f"imagefolder:{root}"]
    )
    assert result.exit_code == 0, result.output
    return result.stderr


def test_a_class_folder_beside_train_and_test_is_mentioned(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", classes=("cat", "dog"), per_class={"train": 3, "test": 2})
    write_image(root / "owl" / "0.png")
    assert "ignoring owl/ beside train/ and test/" in extract_log(root)


def test_images_outside_any_class_folder_are_mentioned(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", classes=("cat", "dog"), per_class={"train": 3, "test": 2})
    write_image(root / "stray.png")
    write_image(root / "train" / "loose.jpg")
    log = extract_log(root)
    assert "ignoring 1 image file(s) outside any class folder (stray.png)" in log
    assert "ignoring 1 image file(s) outside any class folder (loose.jpg)" in log


# --------------------------------------------------------------------------- warnings of other libraries


def assert_short_lines(stderr: str) -> None:
    assert "Traceback" not in stderr and "warnings.warn" not in stderr, stderr
    long = [line for line in stderr.splitlines() if len(line) > SHORT]
    assert not long, long


def test_a_decompression_bomb_warning_is_one_line_naming_the_image(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "big", classes=("a", "b"), per_class={"train": 2, "test": 1})
    huge = root / "train" / "a" / "huge.png"
    Image.new("1", (9500, 9500)).save(huge)  # 90 million pixels: beyond PIL's warning limit, under its refusal
    result = run_featx("extract", "-b", "test_resnet", "--weights", "random", "--image-size", "32", "-d", f"imagefolder:{root}")
    assert result.returncode == 0, result.stderr
    assert_short_lines(result.stderr)
    lines = [line for line in result.stderr.splitlines() if "huge.png" in line]
    assert len(lines) == 1 and "decompression-bomb limit" in lines[0] and "DecompressionBombWarning" not in result.stderr


def test_glyphs_missing_from_the_font_are_one_line(tmp_path: Path) -> None:
    path = write_features(
        tmp_path / "cjk__0123456789abcdef.h5",
        make_features(n_train=30, n_test=15, dim=4),
        class_names=["猫", "犬", "鳥"],
        attrs={"key": KEY},
    )
    result = run_featx("pca", "--features", str(path))
    assert result.returncode == 0, result.stderr
    assert_short_lines(result.stderr)
    assert "Glyph" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "lacks" in line and "犬" in line]) == 1


SCRIPT = """
import logging, warnings
from featx.core.console import setup_logging
setup_logging(0)
logging.getLogger("timm.models._builder").warning("Unexpected keys (%s) found while loading pretrained weights.", ", ".join(f"model.layer{i}.weight" for i in range(400)))
warnings.warn("a library's warning, " + "very long " * 500, UserWarning)
logging.getLogger("featx.extraction").info("and featx's own line")
"""


def test_what_other_libraries_log_or_warn_is_one_short_line_each() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=featx_env(), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith("featx: timm: Unexpected keys (model.layer0.weight") and lines[0].endswith("...")
    assert lines[1].startswith("featx: UserWarning: a library's warning") and lines[2] == "featx: and featx's own line"
    assert_short_lines(result.stderr)


def test_ordinary_large_photos_and_links_to_images_are_read(tmp_path: Path) -> None:
    """The regular-file check and the bomb filter leave ordinary images alone."""
    root = tmp_path / "photos"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((600, 800, 3), i * 40, dtype=np.uint8)).save(root / cls / f"{i}.jpg")
    (root / "a" / "link.jpg").symlink_to(root / "b" / "0.jpg")
    log = extract_log(root)
    assert "not a regular file" not in log and "decompression" not in log

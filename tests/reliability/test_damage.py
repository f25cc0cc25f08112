"""A cache file damaged after it was written is detected when it is opened or read, with
a message that says how to recover, by every reader (fit, pca, the report's PCA plots)
and by ``featx cache verify``; ``cache ls`` never calls it complete when its structure
shows the damage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from featx.cache import FORMAT_VERSION, load_features
from featx.cli import main
from featx.core.errors import CacheError
from tests.reliability.support import assert_one_line_error

KEY = "0123456789abcdef"
HINT = f"featx cache rm {KEY}"


def flip_byte(dataset: str, at: int = 17) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with h5py.File(path, "r") as handle:
            offset = handle[dataset].id.get_chunk_info(0).byte_offset if handle[dataset].chunks else handle[dataset].id.get_offset()
        with open(path, "r+b") as raw:
            raw.seek(offset + at)
            byte = raw.read(1)
            raw.seek(offset + at)
            raw.write(bytes([byte[0] ^ 0x01]))

    return damage


def truncate(fraction: float) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return damage


def edit(change: Callable[[h5py.File], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with h5py.File(path, "r+") as handle:
            change(handle)

    return damage


def short_labels(handle: h5py.File) -> None:
    del handle["train/labels"]
    handle["train"].create_dataset("labels", data=np.zeros(7, dtype=np.int64))


#: damage -> (changes the structure, so that even `cache ls` sees it; text of the error).
#: `cache verify` finds every one but the missing split: a file of the train split only is valid.
DAMAGES: dict[str, tuple[Callable[[Path], None], bool, str]] = {
    "empty file": (truncate(0.0), True, "truncated or damaged"),
    "truncated to a third": (truncate(1 / 3), True, "truncated or damaged"),
    "truncated by a byte": (truncate(0.9999), True, "truncated or damaged"),
    "flipped byte in train features": (flip_byte("train/features"), False, "does not match its checksum"),
    "flipped byte in test features": (flip_byte("test/features", at=1001), False, "does not match its checksum"),
    "flipped byte in labels": (flip_byte("train/labels", at=8), False, "does not match its checksum"),
    "another format version": (edit(lambda f: f.attrs.__setitem__("format_version", FORMAT_VERSION + 1)), True, "format version"),
    "shape disagrees with labels": (edit(short_labels), True, "labels of shape"),
    "split marked incomplete": (edit(lambda f: f["test"].attrs.__setitem__("complete", False)), True, "incomplete"),
    "a split missing": (edit(lambda f: f.__delitem__("test")), False, "has no split 'test'"),  # a train-only file is valid
    "NaN written in": (edit(lambda f: f["train/features"].__setitem__((0, 0), np.nan)), False, "NaN or inf"),
}


@pytest.mark.parametrize("name", list(DAMAGES))
def test_damage_is_detected_on_open_with_a_recovery_hint(feature_file, name: str) -> None:
    damage, structural, message = DAMAGES[name]
    path = feature_file(key=KEY, n_train=64, n_test=32, dim=40)
    damage(path)
    errors = []
    for split in ("train", "test"):
        try:
            load_features(path, split)
        except CacheError as error:
            errors.append(str(error))
    assert errors and message in errors[0], errors
    assert HINT in errors[0] or "run the same extract again" in errors[0]
    runner = CliRunner()
    for command in (["fit", "--features", str(path), "--clf", "logreg", "--cv", "2", "--n-jobs", "1"], ["pca", "--features", str(path)]):
        assert_one_line_error(runner.invoke(main, command), message)
    verified = runner.invoke(main, ["cache", "verify"])
    assert "Traceback" not in verified.output
    assert (verified.exit_code == 2 and "BAD" in verified.stdout) or name == "a split missing"
    listed = runner.invoke(main, ["cache", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    (state,) = [json.loads(line)["state"] for line in listed.stdout.splitlines()]
    assert state.startswith("complete") != structural
    removed = runner.invoke(main, ["cache", "rm", KEY])  # the recovery the message names works
    assert removed.exit_code == 0 and not path.exists()


def test_the_report_skips_the_plot_of_damaged_features(feature_file) -> None:
    path = feature_file(key=KEY, n_train=40, n_test=20, dim=8)
    runner = CliRunner()
    assert (
        runner.invoke(main, ["fit", "--features", str(path), "--clf", "logreg", "--C-grid", "1", "--cv", "2", "--n-jobs", "1"]).exit_code
        == 0
    )
    flip_byte("train/features")(path)
    report = runner.invoke(main, ["report"])
    assert report.exit_code == 0, report.output
    page = (Path(report.stdout.strip().splitlines()[-1])).read_text()
    assert "Traceback" not in report.output and "no PCA plot" in page and "does not match its checksum" in page

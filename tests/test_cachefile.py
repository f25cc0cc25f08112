"""The HDF5 cache contract: layout, crash-safe writing, resume, and distrust of bad files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from featx.cache import (
    FORMAT_VERSION,
    CacheWriter,
    SplitPlan,
    cache_key,
    entry_lock,
    list_entries,
    load_features,
    open_features,
    partial_path,
    read_info,
    remove_entry,
    resolve_features,
    verify_file,
    write_features,
)
from featx.cli import main
from featx.core.errors import CacheBusyError, CacheError
from tests.conftest import make_features

ROOT_ATTRS = {"key": "feedfacecafebeef", "dataset": "synthetic", "backbone": "tiny", "class_names": json.dumps(["a", "b", "c"])}


def test_key_is_stable_and_sensitive() -> None:
    identity = {"model": "resnet50", "input_size": [3, 224, 224], "mean": (0.5, 0.5, 0.5)}
    assert cache_key(identity) == cache_key(dict(reversed(list(identity.items()))))
    assert cache_key(identity) != cache_key({**identity, "input_size": [3, 160, 160]})
    assert len(cache_key(identity)) == 16


def test_roundtrip_layout_readable_with_plain_h5py(feature_file) -> None:
    path = feature_file(name="tiny", n_train=50, n_test=20, dim=8)
    with h5py.File(path, "r") as handle:
        assert handle["train/features"].dtype == np.float32
        assert handle["train/features"].shape == (50, 8)
        assert handle["train/labels"].dtype == np.int64
        assert handle.attrs["format_version"] == FORMAT_VERSION
        assert bool(handle["test"].attrs["complete"])
        assert json.loads(handle.attrs["class_names"]) == ["class_0", "class_1", "class_2"]
    x, y, names = load_features(path, "test")
    assert x.shape == (20, 8) and y.shape == (20,) and names == ["class_0", "class_1", "class_2"]


def test_backbone_name_resolves_in_cache(feature_file) -> None:
    path = feature_file(name="tiny", dataset="synthetic")
    assert resolve_features("tiny", dataset="synthetic") == path
    assert resolve_features("tiny", dataset=None) == path
    x, _, _ = load_features("tiny", "train", dataset="synthetic")
    assert x.shape[0] == 120
    with pytest.raises(CacheError, match="featx extract --backbone resnet50"):
        resolve_features("resnet50", dataset="synthetic")


def _write_prefix(final: Path, x: np.ndarray, y: np.ndarray, rows: int) -> None:
    with CacheWriter(final, root_attrs=ROOT_ATTRS, splits={"train": SplitPlan(len(x), x.shape[1])}) as writer:
        writer.write_rows("train", 0, x[:rows], y[:rows], seconds=1.0)


def test_interrupted_writer_resumes_from_n_done(tmp_path: Path) -> None:
    x, y = make_features(n_train=100, dim=4)["train"]
    final = tmp_path / "c" / "tiny__feedfacecafebeef.h5"
    _write_prefix(final, x, y, 40)
    assert not final.exists() and partial_path(final).exists()
    with pytest.raises(CacheError, match="incomplete"):
        open_features(partial_path(final), splits=("train",))
    with CacheWriter(final, root_attrs=ROOT_ATTRS, splits={"train": SplitPlan(100, 4)}) as writer:
        assert writer.n_done("train") == 40
        writer.write_rows("train", 40, x[40:], y[40:], seconds=1.0)
        writer.finish_split("train", device="cpu")
        writer.commit()
    assert final.exists() and not partial_path(final).exists()
    info = read_info(final)
    assert info.splits["train"].seconds == pytest.approx(2.0)
    assert info.splits["train"].images_per_second == pytest.approx(50.0)
    got_x, got_y = h5py.File(final, "r")["train/features"][...], h5py.File(final, "r")["train/labels"][...]
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)


def test_partial_for_another_key_or_shape_is_discarded(tmp_path: Path) -> None:
    x, y = make_features(n_train=30, dim=4)["train"]
    final = tmp_path / "tiny__feedfacecafebeef.h5"
    _write_prefix(final, x, y, 10)
    with CacheWriter(final, root_attrs={**ROOT_ATTRS, "key": "0000000000000000"}, splits={"train": SplitPlan(30, 4)}) as writer:
        assert writer.n_done("train") == 0
    _write_prefix(final, x, y, 10)
    with CacheWriter(final, root_attrs=ROOT_ATTRS, splits={"train": SplitPlan(30, 5)}) as writer:
        assert writer.n_done("train") == 0


def test_unreadable_partial_is_discarded(tmp_path: Path) -> None:
    final = tmp_path / "tiny__feedfacecafebeef.h5"
    partial_path(final).write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    with CacheWriter(final, root_attrs=ROOT_ATTRS, splits={"train": SplitPlan(5, 2)}) as writer:
        assert writer.n_done("train") == 0


def test_rows_must_be_written_in_order(tmp_path: Path) -> None:
    with CacheWriter(tmp_path / "t__feedfacecafebeef.h5", root_attrs=ROOT_ATTRS, splits={"train": SplitPlan(10, 2)}) as writer:
        with pytest.raises(ValueError, match="in order"):
            writer.write_rows("train", 5, np.zeros((2, 2)), np.zeros(2))
        with pytest.raises(ValueError, match="cannot commit"):
            writer.commit()


KILLED_WRITER = textwrap.dedent(
    """
    import json, os, signal, sys
    import numpy as np
    from featx.cache import CacheWriter, SplitPlan
    final, rows_before_kill = sys.argv[1], int(sys.argv[2])
    x = np.arange(200 * 6, dtype=np.float32).reshape(200, 6)
    y = np.arange(200) % 3
    attrs = {"key": "feedfacecafebeef", "class_names": json.dumps(["a", "b", "c"])}
    with CacheWriter(final, root_attrs=attrs, splits={"train": SplitPlan(200, 6)}) as w:
        for start in range(w.n_done("train"), 200, 16):
            if start >= rows_before_kill:
                os.kill(os.getpid(), signal.SIGKILL)
            w.write_rows("train", start, x[start:start + 16], y[start:start + 16])
        w.finish_split("train", device="cpu")
        w.commit()
    """
)


def test_sigkilled_writer_leaves_a_resumable_partial(tmp_path: Path) -> None:
    final = tmp_path / "k__feedfacecafebeef.h5"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    first = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(final), "100"], env=env, capture_output=True)
    assert first.returncode == -signal.SIGKILL
    assert not final.exists()
    with h5py.File(partial_path(final), "r") as handle:
        assert handle["train"].attrs["n_done"] == 112
    second = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(final), "1000"], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    x, y, _ = load_features(final, "train")
    np.testing.assert_array_equal(x, np.arange(200 * 6, dtype=np.float32).reshape(200, 6))
    np.testing.assert_array_equal(y, np.arange(200) % 3)
    assert verify_file(final) == []


def test_reader_rejects_other_format_version(feature_file) -> None:
    path = feature_file()
    with h5py.File(path, "r+") as handle:
        handle.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(CacheError, match="format version .*featx cache rm"):
        load_features(path, "train")


def test_reader_rejects_truncated_file(feature_file) -> None:
    path = feature_file()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CacheError, match="truncated or damaged"):
        load_features(path, "train")


def test_reader_rejects_nan_and_label_mismatch(feature_file) -> None:
    path = feature_file()
    with h5py.File(path, "r+") as handle:
        handle["train/features"][3, 0] = np.nan
    with pytest.raises(CacheError, match="NaN or inf"):
        load_features(path, "train")
    with h5py.File(path, "r+") as handle:
        del handle["test/labels"]
        handle["test"].create_dataset("labels", data=np.zeros(5, dtype=np.int64))
    with pytest.raises(CacheError, match="labels of shape"):
        load_features(path, "test")


def test_verify_detects_a_flipped_byte(feature_file) -> None:
    path = feature_file(n_train=64, dim=8)
    assert verify_file(path) == []
    with h5py.File(path, "r") as handle:
        offset = handle["train/features"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as raw:
        raw.seek(offset + 17)
        byte = raw.read(1)
        raw.seek(offset + 17)
        raw.write(bytes([byte[0] ^ 0x40]))
    problems = verify_file(path)
    assert len(problems) == 1 and "checksum" in problems[0]


def test_entry_lock_is_exclusive(tmp_path: Path) -> None:
    final = tmp_path / "x__feedfacecafebeef.h5"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from featx.cache import entry_lock; from pathlib import Path; import time\nwith entry_lock(Path({str(final)!r})):\n    print('held', flush=True); time.sleep(30)",
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CacheBusyError), entry_lock(final, wait=False):
            pass
    finally:
        holder.kill()
        holder.wait()
    with entry_lock(final, wait=False):
        pass


def test_cache_cli_ls_info_rm_verify(feature_file) -> None:
    path = feature_file(name="tiny", key="abcdef0123456789")
    runner = CliRunner()
    listed = runner.invoke(main, ["cache", "ls"])
    assert listed.exit_code == 0, listed.output
    assert "abcdef0123456789" in listed.output and "complete" in listed.output and "tiny" in listed.output
    shown = runner.invoke(main, ["cache", "info", "abcdef"])
    assert shown.exit_code == 0 and "backbone: tiny" in shown.output and "[train] rows=120" in shown.output
    assert runner.invoke(main, ["cache", "verify"]).exit_code == 0
    missing = runner.invoke(main, ["cache", "rm", "ffff"])
    assert missing.exit_code == 2 and "no cache entry matches" in missing.output
    removed = runner.invoke(main, ["cache", "rm", "abcdef"])
    assert removed.exit_code == 0 and not path.exists()
    assert list_entries() == []


def test_remove_refuses_while_being_written(feature_file) -> None:
    path = feature_file(key="abcdef0123456789")
    with entry_lock(path), pytest.raises(CacheBusyError):
        remove_entry("abcdef")
    assert path.exists()


def test_write_features_roundtrip_multiple_splits(tmp_path: Path) -> None:
    arrays = make_features(n_train=10, n_test=7, dim=3)
    path = write_features(tmp_path / "w__1111222233334444.h5", arrays, class_names=["a", "b", "c"])
    info = open_features(path)
    assert info.complete and info.dim == 3 and {s: i.n_rows for s, i in info.splits.items()} == {"train": 10, "test": 7}


def test_string_subclass_attributes_are_stored_as_plain_strings(tmp_path: Path) -> None:
    class Version(str):  # like torch.__version__ (TorchVersion)
        pass

    path = write_features(
        tmp_path / "v__1111222233334444.h5",
        make_features(n_train=4, n_test=2, dim=2),
        class_names=["a", "b", "c"],
        attrs={"torch_version": Version("2.15.0")},
    )
    assert read_info(path).attrs["torch_version"] == "2.15.0"

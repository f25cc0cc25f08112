"""Sharded extraction without Dask: shard planning, stitching shard files into one entry
through HDF5 virtual datasets, the cache commands on sharded entries, and ``featx extract
--shard K/N`` (one job of a Slurm-style array) end to end with a tiny model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import featx
from featx import cache as cachefile
from featx.cache import load_features, open_features, read_info, verify_file, write_features
from featx.cache.shards import ShardSpec, shard_bounds, stitch, stitch_entry
from featx.cli import main
from featx.core.errors import CacheError, ConfigError
from featx.extraction.config import ExtractConfig
from featx.extraction.engine import extract_shard, plan_extraction
from tests.conftest import make_features

KEY = "5ba4d5ba4d5ba4d0"
CLASSES = ["a", "b", "c"]
TINY_DATA = "digits"
TINY = {"weights": "random", "image_size": 32, "limit": 30, "batch_size": 8}  # ExtractConfig fields and extract's options
TINY_ARGS = [
    "--backbone",
    "test_resnet",
    "--weights",
    "random",
    "--image-size",
    "32",
    "--dataset",
    "digits",
    "--limit",
    "30",
    "--batch-size",
    "8",
]


def cache_root() -> Path:
    return Path(os.environ["FEATX_CACHE_DIR"])


def final_path(key: str = KEY) -> Path:
    return cache_root() / "synthetic" / f"tiny__{key}.h5"


def write_shards(
    arrays: dict[str, tuple[np.ndarray, np.ndarray]], count: int, *, indices: range | list[int] | None = None, key: str = KEY
) -> list[Path]:
    """Shard files of ``arrays`` as featx writes them: rows ``shard.rows(n)`` of each split."""
    sizes = {split: len(labels) for split, (_, labels) in arrays.items()}
    written = []
    for index in range(count) if indices is None else indices:
        shard = ShardSpec(index, count)
        part = {split: (x[slice(*shard.rows(len(y)))], y[slice(*shard.rows(len(y)))]) for split, (x, y) in arrays.items()}
        attrs = {"key": key, "dataset": "synthetic", "backbone": "tiny", "weights": "random", **shard.attrs(sizes)}
        written.append(write_features(shard.path(final_path(key)), part, class_names=CLASSES, attrs=attrs, device=f"cpu worker {index}"))
    return written


@pytest.fixture
def arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return make_features(n_train=50, n_test=20, dim=6)


# --------------------------------------------------------------------------- planning


@given(n_rows=st.integers(0, 5000), count=st.integers(1, 64))
def test_shard_bounds_cover_every_row_once_in_order(n_rows: int, count: int) -> None:
    bounds = shard_bounds(n_rows, count)
    assert len(bounds) == count and bounds[0][0] == 0 and bounds[-1][1] == n_rows
    assert all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1
    assert [ShardSpec(k, count).rows(n_rows) for k in range(count)] == bounds


def test_shard_spec_parses_k_of_n_from_zero() -> None:
    assert ShardSpec.parse("2/8") == ShardSpec(2, 8) and str(ShardSpec(2, 8)) == "2/8"
    for bad, message in (("8/8", "K must be in 0..7"), ("x/2", "use K/N"), ("3", "use K/N"), ("0/0", "at least 1"), ("-1/2", "use K/N")):
        with pytest.raises(ConfigError, match=message):
            ShardSpec.parse(bad)


# --------------------------------------------------------------------------- stitching


def test_stitched_entry_reads_like_any_cache_file_without_copying(arrays) -> None:
    shard_files = write_shards(arrays, 3)
    path = stitch(final_path(), 3)
    for split, (x, y) in arrays.items():
        features, labels, classes = load_features(path, split)
        np.testing.assert_array_equal(features, x)
        np.testing.assert_array_equal(labels, y)
        assert classes == CLASSES
    with h5py.File(path, "r") as handle:  # plain h5py sees the usual layout, as virtual datasets
        assert handle["train/features"].is_virtual and handle["train/labels"].is_virtual
        assert handle["train/features"].shape == (50, 6) and handle.attrs["shard_count"] == 3
        assert "shard_index" not in handle.attrs and handle["train"].attrs["device"].endswith("(3 shards)")
    info = read_info(path)
    assert info.stitched and info.shard_files == tuple(shard_files) and info.key == KEY
    assert path.stat().st_size < min(f.stat().st_size for f in shard_files)  # the entry holds no feature
    assert info.size_bytes > sum(f.stat().st_size for f in shard_files)
    assert all(not Path(name).is_absolute() for name in info.attrs["shards"])
    assert verify_file(path) == []  # checksums computed through the virtual datasets
    assert stitch(final_path(), 3) == path  # already complete: kept as it is

    moved = cache_root().with_name("moved")  # relative source names: the cache folder can move
    shutil.move(cache_root(), moved)
    np.testing.assert_array_equal(load_features(moved / "synthetic" / path.name, "test")[0], arrays["test"][0])


def test_a_missing_shard_makes_the_stitched_entry_untrusted(arrays) -> None:
    shard_files = write_shards(arrays, 3)
    path = stitch(final_path(), 3)
    shard_files[1].unlink()
    with h5py.File(path, "r") as handle:  # why: a virtual dataset reads a missing source as its fill value
        assert np.isnan(handle["train/features"][20]).all()
    with pytest.raises(CacheError, match="shard-1-of-3.h5"):
        open_features(path)
    assert any("shard-1-of-3.h5" in problem for problem in verify_file(path))
    result = CliRunner().invoke(main, ["cache", "verify"])
    assert result.exit_code == 2 and "BAD" in result.output
    with pytest.raises(CacheError, match=r"shard\(s\) 1 of 3 are missing"):
        stitch(final_path(), 3, force=True)


def test_stitch_refuses_an_incomplete_or_mixed_set(arrays) -> None:
    write_shards(arrays, 3, indices=[0, 2])
    with pytest.raises(CacheError, match=r"shard\(s\) 1 of 3 are missing"):
        stitch(final_path(), 3)
    write_shards(arrays, 3, indices=[1], key="0000000000000000")  # another entry's shard, misplaced
    os.replace(ShardSpec(1, 3).path(final_path("0000000000000000")), ShardSpec(1, 3).path(final_path()))
    with pytest.raises(CacheError, match="belongs to entry 0000000000000000"):
        stitch(final_path(), 3)
    write_shards(make_features(n_train=51, n_test=20, dim=6), 3, indices=[1])  # a shard of other split sizes
    with pytest.raises(CacheError, match="expected"):
        stitch(final_path(), 3)
    assert not final_path().exists()


def test_cache_commands_on_a_shard_set(arrays) -> None:
    runner = CliRunner()
    write_shards(arrays, 3, indices=[0, 1])
    listed = runner.invoke(main, ["cache", "ls"])
    assert listed.exit_code == 0 and "shards 2/3 done (missing: 2)" in listed.output and KEY in listed.output
    early = runner.invoke(main, ["cache", "stitch", KEY[:6]])
    assert early.exit_code == 2 and "shard(s) 2 of 3 are missing" in early.output
    info = runner.invoke(main, ["cache", "info", KEY[:6]])
    assert info.exit_code == 2 and "unfinished sharded extraction" in info.output
    write_shards(arrays, 3, indices=[2])
    stitched = runner.invoke(main, ["cache", "stitch", KEY[:6]])
    assert stitched.exit_code == 0, stitched.output
    assert stitched.stdout.strip() == str(final_path())
    listed = runner.invoke(main, ["cache", "ls"])
    assert "complete (3 shards)" in listed.output and "missing" not in listed.output
    removed = runner.invoke(main, ["cache", "rm", KEY[:6]])
    assert removed.exit_code == 0 and removed.stdout.count("removed") == 4  # the entry and its three shard files
    assert not final_path().exists() and not cachefile.shards_dir(final_path()).exists()
    assert runner.invoke(main, ["cache", "ls"]).stdout.strip() == "the cache is empty"


def test_cache_rm_and_stitch_by_count_on_an_unfinished_set(arrays) -> None:
    write_shards(arrays, 2, indices=[0])
    write_shards(arrays, 4)
    with pytest.raises(CacheError, match="several shard counts"):
        stitch_entry(KEY)
    assert stitch_entry(KEY, count=4) == final_path()
    assert cachefile.remove_entry(KEY)[0] == final_path()
    write_shards(arrays, 2, indices=[0])
    assert [p.name for p in cachefile.remove_entry(KEY)] == ["shard-0-of-2.h5"]
    assert not cachefile.shards_dir(final_path()).parent.exists()


# --------------------------------------------------------------------------- featx extract --shard K/N


def test_shard_array_through_the_cli_equals_the_unsharded_extraction(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    reference = featx.extract(TINY_DATA, backbone="test_resnet", **TINY, cache_dir=cache_root() / "reference")
    first = runner.invoke(main, ["extract", *TINY_ARGS, "--shard", "0/2"])
    assert first.exit_code == 0, first.output
    entry = cache_root() / "digits" / reference.name  # the unsharded key
    assert Path(first.stdout.strip()) == ShardSpec(0, 2).path(entry) and not entry.exists()
    assert "1 of 2 shards" in first.stderr
    second = runner.invoke(main, ["extract", *TINY_ARGS, "--shard", "1/2"])
    assert second.exit_code == 0, second.output
    assert Path(second.stdout.strip()) == entry  # the last shard stitched the entry
    for split in ("train", "test"):
        x, y, _ = load_features(entry, split)
        x_ref, y_ref, _ = load_features(reference, split)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_allclose(x, x_ref, rtol=1e-5, atol=1e-6)
    assert runner.invoke(main, ["cache", "verify"]).exit_code == 0
    fitted = runner.invoke(
        main, ["-q", "fit", "--features", "test_resnet", "--dataset", "digits", "--clf", "logreg", "--C-grid", "1", "--cv", "3", "--json"]
    )
    assert fitted.exit_code == 0, fitted.output
    assert f'"key": "{entry.stem.rsplit("__", 1)[-1]}"' in fitted.output

    # a plain extract with the same options is a cache hit on the stitched entry
    monkeypatch.setattr("featx.extraction.models.create_backbone", lambda *a, **k: pytest.fail("built a model on a cache hit"))
    assert featx.extract(TINY_DATA, backbone="test_resnet", **TINY) == entry
    entry.unlink()  # the stitched file lost: `featx cache stitch` rebuilds it from the shards
    restitched = runner.invoke(main, ["cache", "stitch", entry.stem.rsplit("__", 1)[-1][:8]])
    assert restitched.exit_code == 0 and Path(restitched.stdout.strip()) == entry and verify_file(entry) == []


def test_shard_options_are_checked() -> None:
    runner = CliRunner()
    out_of_range = runner.invoke(main, ["extract", *TINY_ARGS, "--shard", "2/2"])
    assert out_of_range.exit_code == 2 and "K must be in 0..1" in out_of_range.output
    both = runner.invoke(main, ["extract", *TINY_ARGS, "--shard", "0/2", "--shards", "2"])
    assert both.exit_code == 2 and "without Dask" in both.output
    no_scheduler = runner.invoke(main, ["extract", *TINY_ARGS, "--shards", "2"])
    assert no_scheduler.exit_code == 2 and "needs a Dask scheduler" in no_scheduler.output
    assert not cache_root().exists() or not any(cache_root().rglob("*.h5"))


def test_a_rerun_recomputes_only_the_missing_shard() -> None:
    config = ExtractConfig(backbone="test_resnet", weights="random", image_size=32, limit=30)
    results = [extract_shard(TINY_DATA, config, ShardSpec(k, 3), batch_size=8) for k in range(3)]
    assert [r.computed for r in results] == [True] * 3 and [r.stitched is not None for r in results] == [False, False, True]
    entry = results[-1].stitched
    stamps = {r.path: r.path.stat().st_mtime_ns for r in results}
    results[1].path.unlink()
    with pytest.raises(CacheError, match="shard-1-of-3.h5"):
        open_features(entry)
    again = [extract_shard(TINY_DATA, config, ShardSpec(k, 3), batch_size=8) for k in range(3)]
    assert [r.computed for r in again] == [False, True, False]
    assert again[1].stitched == entry and verify_file(entry) == []  # stitched again by the recomputed shard
    assert all(r.path.stat().st_mtime_ns == stamps[r.path] for r in (again[0], again[2]))
    # once the entry is trusted, every shard is a cache hit
    assert all(not extract_shard(TINY_DATA, config, ShardSpec(k, 3), batch_size=8).computed for k in range(3))
    # an unsharded extraction (--force) replaces the stitched entry and removes its shard files
    assert featx.extract(TINY_DATA, config, batch_size=8, force=True) == entry == plan_extraction(TINY_DATA, config).path
    assert not read_info(entry).stitched and not cachefile.shards_dir(entry).exists()

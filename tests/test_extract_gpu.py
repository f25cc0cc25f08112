"""GPU tier (skipped without CUDA): CUDA extraction in bf16 against CPU fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import featx
from tests.fakes import cosines, write_image_folder

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("dataset", ["digits", "folder"])
def test_cuda_bf16_features_match_cpu_fp32(tmp_path: Path, dataset: str) -> None:
    if dataset == "folder":  # small and large images: device resize and worker resize, pinned memory
        root = write_image_folder(tmp_path / "pets", per_class={"train": 8, "test": 8}, size=(48, 40))
        write_image_folder(tmp_path / "pets", classes=("cat",), per_class={"train": 2, "test": 2}, size=(500, 375), ext=".jpg")
        spec = f"imagefolder:{root}"
    else:
        spec = "digits"
    common = {"backbone": "resnet18", "weights": "random", "image_size": 96, "limit": 64, "batch_size": 16}
    cpu = featx.extract(spec, device="cpu", precision="fp32", **common)
    gpu = featx.extract(spec, device="cuda", **common)  # auto = bf16 on CUDA
    assert cpu != gpu  # precision is part of the key
    import h5py

    with h5py.File(gpu, "r") as handle:
        assert handle.attrs["precision"] in ("bf16", "fp16") and handle["test"].attrs["device"].startswith("cuda")
    for split in ("train", "test"):
        x_cpu, y_cpu, _ = featx.load_features(cpu, split, dataset=None)
        x_gpu, y_gpu, _ = featx.load_features(gpu, split, dataset=None)
        np.testing.assert_array_equal(y_cpu, y_gpu)
        mean = x_cpu.mean(0, keepdims=True)
        assert cosines(x_gpu, x_cpu).min() > 0.99
        assert cosines(x_gpu - mean, x_cpu - mean).min() > 0.99


def test_cuda_fp32_matches_cpu_fp32(tmp_path: Path) -> None:
    common = {"backbone": "test_resnet", "weights": "random", "image_size": 64, "limit": 32, "precision": "fp32"}
    cpu = featx.extract("digits", device="cpu", **common)
    gpu = featx.extract("digits", device="cuda:0", cache_dir=tmp_path / "gpu", **common)
    assert cpu.name == gpu.name  # same key: the device is not part of it
    x_cpu, _, _ = featx.load_features(cpu, "test", dataset=None)
    x_gpu, _, _ = featx.load_features(gpu, "test", dataset=None)
    mean = x_cpu.mean(0, keepdims=True)
    assert cosines(x_gpu - mean, x_cpu - mean).min() > 0.999

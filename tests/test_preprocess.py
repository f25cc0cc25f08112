"""The on-device transform against timm's own PIL reference (``timm.data.create_transform``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from featx.core.errors import ConfigError
from featx.extraction.dataconfig import CROP_MODES, DataConfig, parse_triple, shrinks
from featx.extraction.preprocess import DevicePreprocess

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def reference(image: Image.Image, config: DataConfig) -> torch.Tensor:
    from timm.data import create_transform

    return create_transform(**config.timm_kwargs())(image.convert("RGB"))


def smooth_image(height: int, width: int, *, seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(height // 4, 2), max(width // 4, 2), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.BILINEAR).convert(mode)


def ours(image: Image.Image, config: DataConfig, *, uint8_resize: bool) -> torch.Tensor:
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    batch = DevicePreprocess(config, "cpu", uint8_resize=uint8_resize)(torch.from_numpy(pixels.copy()).unsqueeze(0))
    assert batch.dtype == torch.float32 and batch.is_contiguous(memory_format=torch.channels_last)
    return batch[0]


def in_grey_levels(difference: torch.Tensor, config: DataConfig) -> float:
    """Largest difference of normalised tensors, back on the 0..255 scale."""
    return float((difference.abs() * torch.tensor(config.std).view(3, 1, 1) * 255).max())


def share_differing(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float(((got - expected).abs() > 1e-4).any(dim=0).float().mean())


@pytest.mark.parametrize("crop_mode", CROP_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize(("height", "width"), [(32, 32), (20, 37), (300, 200), (8, 8)])
def test_device_transform_matches_timm_reference(crop_mode: str, interpolation: str, height: int, width: int) -> None:
    for size, crop_pct in (((64, 64), 0.95), ((48, 80), 0.875), ((40, 40), 1.2)):
        config = DataConfig((3, *size), interpolation, *IMAGENET, crop_pct, crop_mode)
        image = smooth_image(height, width, seed=height * width)
        expected = reference(image, config)
        for uint8_resize in (True, False):  # CPU path and the float path used on CUDA
            got = ours(image, config, uint8_resize=uint8_resize)
            assert got.shape == expected.shape
            if interpolation == "nearest":
                # PIL and torch round a sample position that falls exactly between two
                # pixels differently: a row or column here and there differs, the rest is equal
                assert share_differing(got, expected) < 0.07, (size, crop_pct, uint8_resize)
                continue
            # float bicubic differs from PIL's integer arithmetic by a few levels at sharp edges
            limit = 2.5 if uint8_resize else 12.0
            assert in_grey_levels(got - expected, config) <= limit, (size, crop_pct, uint8_resize)


def test_grey_images_become_three_channels_like_pil_convert_rgb() -> None:
    config = DataConfig((3, 40, 40), "bicubic", *IMAGENET, 0.9, "center")
    image = smooth_image(28, 28, seed=3, mode="L")
    got = ours(image, config, uint8_resize=True)
    expected = reference(image, config)
    assert got.shape == (3, 40, 40)
    assert in_grey_levels(got - expected, config) <= 2.5


def test_border_mode_pads_with_the_mean_colour() -> None:
    config = DataConfig((3, 32, 32), "bilinear", *IMAGENET, 1.0, "border")
    image = smooth_image(10, 30, seed=1)  # wide: fitted by its width, padded above and below
    got = ours(image, config, uint8_resize=True)
    expected = reference(image, config)
    assert in_grey_levels(got - expected, config) <= 2.5
    torch.testing.assert_close(got[:, 0, 0], expected[:, 0, 0], atol=1e-5, rtol=0)  # the padding itself


def test_a_wrong_transform_is_caught_by_the_comparison() -> None:
    """The tolerance above is meaningful: skipping the crop is far outside it."""
    config = DataConfig((3, 64, 64), "bicubic", *IMAGENET, 0.875, "center")
    image = smooth_image(32, 32, seed=5)
    no_crop = DataConfig((3, 64, 64), "bicubic", *IMAGENET, 1.0, "center")
    assert in_grey_levels(ours(image, no_crop, uint8_resize=True) - reference(image, config), config) > 20


def test_final_images_are_only_normalised() -> None:
    config = DataConfig((3, 16, 16), "bicubic", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 0.9, "center")
    pixels = torch.full((2, 16, 16, 3), 255, dtype=torch.uint8)
    out = DevicePreprocess(config, "cpu")(pixels, final=True)
    assert out.shape == (2, 3, 16, 16) and torch.allclose(out, torch.full_like(out, 2.0))
    with pytest.raises(ValueError, match="final images must be"):
        DevicePreprocess(config, "cpu")(torch.zeros((1, 8, 8, 3), dtype=torch.uint8), final=True)


def test_shrinks_means_a_downscale() -> None:
    config = DataConfig((3, 224, 224), "bicubic", *IMAGENET, 0.875, "center")  # resize edge 256
    assert not shrinks(32, 32, config) and not shrinks(256, 400, config)
    assert shrinks(300, 400, config) and shrinks(257, 257, config)


def test_data_config_rejects_nonsense() -> None:
    with pytest.raises(ConfigError, match="crop mode"):
        DataConfig((3, 8, 8), "bilinear", *IMAGENET, 0.9, "zoom")
    with pytest.raises(ConfigError, match="std > 0"):
        DataConfig((3, 8, 8), "bilinear", (0.5, 0.5, 0.5), (0.0, 1.0, 1.0), 0.9)
    assert parse_triple("0.5") == (0.5, 0.5, 0.5)
    assert parse_triple("0.1, 0.2,0.3") == (0.1, 0.2, 0.3)
    with pytest.raises(ConfigError, match="takes three numbers"):
        parse_triple("1,2")
    with pytest.raises(ConfigError, match="comma-separated"):
        parse_triple("a,b,c")

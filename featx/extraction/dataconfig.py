"""The data config: how images become model input, as plain data (no torch).

timm's reference eval transform (``timm.data.create_transform(**data_config)``, on PIL
images) is::

    Resize(floor(size / crop_pct))  ->  CenterCrop(size)  ->  ToTensor  ->  Normalize(mean, std)

(``squash`` resizes both edges instead of the shorter one; ``border`` fits the longer
edge and pads with the mean colour). :class:`DataConfig` holds its parameters and
:func:`plan_geometry` computes, for one image size, the resize and the crop/pad box
exactly as torchvision and timm do (same rounding). :mod:`featx.extraction.preprocess` applies
them to whole batches on the device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from featx.core.errors import ConfigError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CROP_MODES = ("center", "squash", "border")


@dataclass(frozen=True)
class DataConfig:
    """How images are turned into model input; every field changes the features.

    Attributes:
        input_size: ``(channels, height, width)`` of the model input.
        interpolation: "bilinear", "bicubic" or "nearest".
        mean: per-channel mean on the 0..1 scale.
        std: per-channel standard deviation on the 0..1 scale.
        crop_pct: the crop's share of the resized image (1.0 = no crop).
        crop_mode: "center" (resize the shorter edge, crop the centre), "squash"
            (resize both edges, crop) or "border" (fit the longer edge, pad).
    """

    input_size: tuple[int, int, int]
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"interpolation {self.interpolation!r} is not supported; use one of {', '.join(INTERPOLATIONS)}")
        if self.crop_mode not in CROP_MODES:
            raise ConfigError(f"crop mode {self.crop_mode!r} is not supported; use one of {', '.join(CROP_MODES)}")
        if len(self.input_size) != 3 or self.input_size[0] != 3 or min(self.input_size) < 1:
            raise ConfigError(f"input size must be (3, height, width), got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"mean and std need three values each and std > 0, got mean={self.mean} std={self.std}")
        if not 0.0 < self.crop_pct <= 4.0:
            raise ConfigError(f"crop_pct must be in (0, 4], got {self.crop_pct}")

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the model input."""
        return self.input_size[1], self.input_size[2]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the cache key and the file's attributes."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def timm_kwargs(self) -> dict[str, Any]:
        """Arguments for ``timm.data.create_transform`` that give the reference transform."""
        return {
            "input_size": self.input_size,
            "interpolation": self.interpolation,
            "mean": self.mean,
            "std": self.std,
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
        }


@dataclass(frozen=True)
class Geometry:
    """Where an image of one size goes: resize to ``resize``, then take ``out`` from it.

    ``top``/``left`` locate the output window in the resized image; negative values mean
    padding (with ``fill``), as torchvision's CenterCrop and timm's CenterCropOrPad do.
    """

    resize: tuple[int, int]
    out: tuple[int, int]
    top: int
    left: int
    pad_with_mean: bool


def _crop_offset(image: int, crop: int) -> int:
    """Offset of a centred crop (negative: padding before), torchvision's rounding."""
    if crop > image:
        return -((crop - image) // 2)
    return round((image - crop) / 2.0)


def plan_geometry(height: int, width: int, config: DataConfig) -> Geometry:
    """The resize and crop timm's eval transform applies to a ``height`` x ``width`` image.

    Mirrors ``timm.data.transforms_factory.transforms_imagenet_eval`` (timm 1.0):
    ``scale = floor(size / crop_pct)`` per edge; "center" with a square target resizes
    the shorter edge (torchvision ``Resize(int)``: the longer edge is truncated),
    otherwise keeps the ratio against both edges (``ResizeKeepRatio``: rounded);
    "squash" resizes to ``scale`` exactly; "border" fits the longer edge.

    Returns:
        The geometry for that image size.
    """
    out_h, out_w = config.size
    scale_h, scale_w = math.floor(out_h / config.crop_pct), math.floor(out_w / config.crop_pct)
    if config.crop_mode == "squash":
        resize = (scale_h, scale_w)
    elif config.crop_mode == "center" and scale_h == scale_w:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = scale_h, int(scale_h * long / short)
        resize = (new_long, new_short) if width <= height else (new_short, new_long)
    else:  # ResizeKeepRatio: "center" with a non-square target (longest=0) or "border" (longest=1)
        ratio_h, ratio_w = height / scale_h, width / scale_w
        ratio = max(ratio_h, ratio_w) if config.crop_mode == "border" else min(ratio_h, ratio_w)
        resize = (max(1, round(height / ratio)), max(1, round(width / ratio)))  # timm's PIL call fails at 0
    return Geometry(
        resize=resize,
        out=(out_h, out_w),
        top=_crop_offset(resize[0], out_h),
        left=_crop_offset(resize[1], out_w),
        pad_with_mean=config.crop_mode == "border",
    )


def shrinks(height: int, width: int, config: DataConfig) -> bool:
    """Whether timm's transform makes an image of this size smaller (a downscale).

    Such images are resized on the host by timm's own PIL transform (in DataLoader
    workers), which keeps the batch that travels to the device small.
    """
    resize = plan_geometry(height, width, config).resize
    return resize[0] < height or resize[1] < width


def parse_triple(values: Sequence[float] | str | float | None) -> tuple[float, float, float] | None:
    """Accept ``"0.5,0.5,0.5"``, one number for all channels (``0.5`` or ``"0.5"``), or a
    sequence of three.

    Raises:
        ConfigError: not three numbers.
    """
    if values is None:
        return None
    if isinstance(values, (int, float)):
        values = [values]
    if isinstance(values, str):
        try:
            values = [float(v) for v in values.replace(" ", "").split(",") if v]
        except ValueError:
            raise ConfigError(f"takes three comma-separated numbers, got {values!r}") from None
    try:
        numbers = tuple(float(v) for v in values if not isinstance(v, bool))
    except (TypeError, ValueError):
        raise ConfigError(f"takes three numbers (one per channel), got {values!r}") from None
    if len(numbers) != len(values):
        raise ConfigError(f"takes three numbers (one per channel), got {values!r}")
    if len(numbers) == 1:
        numbers = numbers * 3
    if len(numbers) != 3:
        raise ConfigError(f"takes three numbers (one per channel), got {len(numbers)}")
    return numbers[0], numbers[1], numbers[2]


def config_from_mapping(values: Mapping[str, Any]) -> DataConfig:
    """A DataConfig from a timm-style dict (``input_size``, ``interpolation``, ...)."""
    return DataConfig(
        input_size=tuple(int(v) for v in values["input_size"]),  # type: ignore[arg-type]
        interpolation=str(values["interpolation"]),
        mean=tuple(float(v) for v in values["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in values["std"]),  # type: ignore[arg-type]
        crop_pct=float(values.get("crop_pct") or 0.875),
        crop_mode=str(values.get("crop_mode") or "center"),
    )

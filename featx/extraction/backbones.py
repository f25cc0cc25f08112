"""timm backbones: name checks, data config, and creating the frozen model.

Everything that goes into the cache key is resolved here *without* building the model:
the name and pretrained tag come from timm's registry (``get_pretrained_cfg``, a dict
lookup), the data config from the model's pretrained config under the user's overrides,
and the weights identity in :mod:`featx.extraction.weights`. So a cache hit never
instantiates or loads a network; :mod:`featx.extraction.models` builds the frozen model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from featx.core.errors import ConfigError, UnknownNameError
from featx.core.registry import closest_names
from featx.extraction.dataconfig import DataConfig, config_from_mapping

log = logging.getLogger(__name__)

CLASSIC_BACKBONES = ("vgg16", "vgg19", "inception_v3", "resnet50")
#: the raw-pixels baseline: the preprocessed image itself, flattened, as the "features"
PIXELS = "pixels"
# its data config: 32 px (3,072 features), the whole image, values in 0..1 (a classifier scales them)
PIXELS_CFG: dict[str, Any] = {
    "input_size": (3, 32, 32),
    "interpolation": "bilinear",
    "mean": (0.0, 0.0, 0.0),
    "std": (1.0, 1.0, 1.0),
    "crop_pct": 1.0,
    "crop_mode": "center",
}
# timm's defaults when a model has no pretrained config (timm.data.constants)
TIMM_DEFAULTS: dict[str, Any] = {
    "input_size": (3, 224, 224),
    "interpolation": "bicubic",
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "crop_pct": 0.875,
    "crop_mode": "center",
}


@dataclass(frozen=True)
class Backbone:
    """A checked timm model name and its pretrained config (no network built).

    Attributes:
        name: the name as given ("resnet50", "resnet50.a1_in1k").
        architecture: timm's architecture ("resnet50").
        tag: the pretrained tag timm resolves the name to ("a1_in1k"), or "".
        pretrained_cfg: timm's pretrained config for that tag (a plain dict).
    """

    name: str
    architecture: str
    tag: str
    pretrained_cfg: dict[str, Any]
    default_tag: str = ""

    @property
    def display_name(self) -> str:
        """The name cache files use: the architecture for its default tag, else ``arch.tag``.

        So ``resnet50`` and ``resnet50.a1_in1k`` (its default) name the same file, which
        ``--features resnet50`` finds.
        """
        return self.architecture if not self.tag or self.tag == self.default_tag else f"{self.architecture}.{self.tag}"

    @property
    def is_pixels(self) -> bool:
        """Whether this is the raw-pixels baseline rather than a timm model."""
        return self.architecture == PIXELS

    @property
    def weights_source(self) -> str:
        """Where timm would fetch the pretrained weights from ("" when nowhere)."""
        cfg = self.pretrained_cfg
        return str(cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file") or "")


def resolve_backbone(name: str) -> Backbone:
    """Check a timm model name and fetch its pretrained config, without building it.

    ``pixels`` is the raw-pixels baseline: no model, the preprocessed image flattened
    (32 px by default: 3,072 features; ``--image-size`` sets it), through the same cache,
    fits and report as any backbone.

    Args:
        name: a timm architecture, optionally with a pretrained tag ("vgg16.tv_in1k"), or "pixels".

    Returns:
        The backbone description.

    Raises:
        UnknownNameError: timm has no such model or tag; the message names the closest.
    """
    import timm
    from timm.models import get_pretrained_cfg

    cleaned = name.strip()
    if cleaned == PIXELS:
        return Backbone(name=PIXELS, architecture=PIXELS, tag="", pretrained_cfg=dict(PIXELS_CFG))
    if cleaned.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        raise ConfigError(
            f"{name!r}: hub and local-dir model names are not supported; use a timm model name and --weights PATH for a local checkpoint"
        )
    architecture, _, tag = cleaned.partition(".")
    if not architecture or not timm.is_model(architecture):
        close = closest_names(architecture.lower(), timm.list_models(), n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown backbone {name!r}{hint} (any timm model name works, e.g. {', '.join(CLASSIC_BACKBONES)}; list them with timm.list_models(); "
            f"{PIXELS} is the raw-pixels baseline)"
        )
    try:
        cfg = get_pretrained_cfg(cleaned) if tag else get_pretrained_cfg(architecture)
    except RuntimeError:  # timm raises for an invalid tag
        cfg = None
    if tag and cfg is None:
        tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{architecture}.*")]
        raise UnknownNameError(f"{architecture} has no pretrained tag {tag!r}; its tags: {', '.join(tags) or 'none'}")
    cfg_dict = cfg.to_dict() if cfg is not None else {}
    default = get_pretrained_cfg(architecture)
    return Backbone(
        name=cleaned,
        architecture=architecture,
        tag=str(cfg_dict.get("tag") or tag or ""),
        pretrained_cfg=cfg_dict,
        default_tag=str(getattr(default, "tag", "") or ""),
    )


def resolve_data_config(
    backbone: Backbone,
    *,
    image_size: int | tuple[int, int] | None = None,
    interpolation: str | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    crop_pct: float | None = None,
    crop_mode: str | None = None,
) -> DataConfig:
    """The data config: explicit arguments, else the model's pretrained config, else timm's defaults.

    Args:
        backbone: the resolved backbone.
        image_size: model input edge (or ``(height, width)``).
        interpolation, mean, std, crop_pct, crop_mode: overrides (see :class:`DataConfig`).

    Returns:
        The resolved config.

    Raises:
        ConfigError: an override is invalid.
    """
    cfg = backbone.pretrained_cfg
    merged = {key: cfg.get(key) or default for key, default in TIMM_DEFAULTS.items()}
    if image_size is not None:
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        if min(height, width) < 1:
            raise ConfigError(f"--image-size must be positive, got {image_size}")
        merged["input_size"] = (3, int(height), int(width))
    explicit = {"interpolation": interpolation, "mean": mean, "std": std, "crop_pct": crop_pct, "crop_mode": crop_mode}
    merged.update({key: value for key, value in explicit.items() if value is not None})
    return config_from_mapping(merged)

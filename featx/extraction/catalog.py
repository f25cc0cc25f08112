"""What backbones exist (``featx backbones``): timm names with their feature dimension,
native input size, and whether pretrained weights for them are on this machine.

The feature dimension is read from a model built on PyTorch's ``meta`` device (no memory,
no weights), so listing many is cheap; above :data:`MAX_DIMS` matches the dimension is
left out (narrow the pattern to see it). Touches no network.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass

from featx.extraction.backbones import PIXELS, TIMM_DEFAULTS, resolve_backbone
from featx.extraction.weights import NETWORK, weight_sources

log = logging.getLogger(__name__)

#: more matches than this: no feature dimensions (each needs a model built, on the meta device)
MAX_DIMS = 100


@dataclass(frozen=True)
class BackboneInfo:
    """One timm model as ``featx backbones`` lists it.

    Attributes:
        name: the timm architecture (what ``--backbone`` takes).
        feature_dim: the pooled pre-logits width (the cache's D), or None when not computed.
        input_size: the native input size ``(channels, height, width)`` of its default weights.
        pretrained: whether timm knows pretrained weights for it.
        here: the local source that has its weights (``hub-cache``, ``torch-hub``,
            ``package``), or "" when only the network does (or none).
    """

    name: str
    feature_dim: int | None
    input_size: tuple[int, ...]
    pretrained: bool
    here: str

    def __repr__(self) -> str:
        dim = self.feature_dim if self.feature_dim is not None else "?"
        return f"BackboneInfo({self.name}, {dim}-d, {self.input_size[-1]} px, weights {'here: ' + self.here if self.here else 'not here'})"


def list_backbones(pattern: str = "*", *, pretrained_here: bool = False, dims: bool = True) -> list[BackboneInfo]:
    """timm architectures matching ``pattern`` (shell-style, e.g. ``resnet*``), sorted.

    Args:
        pattern: a name or a shell pattern; a plain word without ``*``/``?`` matches names
            containing it.
        pretrained_here: only those whose pretrained weights are on this machine.
        dims: compute the feature dimensions (at most :data:`MAX_DIMS` of them).

    Returns:
        One :class:`BackboneInfo` per matching architecture.
    """
    import timm

    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    names = sorted({*timm.list_models(pattern), *([PIXELS] if fnmatch.fnmatch(PIXELS, pattern) else [])})
    found = []
    for name in names:
        backbone = resolve_backbone(name)
        here = ""
        pretrained = bool(backbone.weights_source)
        if pretrained and not backbone.is_pixels:
            here = next((s.kind for s in weight_sources(backbone) if s.available and s.kind != NETWORK), "")
        if pretrained_here and not here:
            continue
        found.append((backbone, pretrained, here))
    with_dims = dims and len(found) <= MAX_DIMS
    if dims and not with_dims:
        log.info("%d backbones match: feature dimensions left out (shown for at most %d; narrow the pattern)", len(found), MAX_DIMS)
    infos = []
    for backbone, pretrained, here in found:
        from featx.extraction.models import feature_dim

        size = tuple(backbone.pretrained_cfg.get("input_size") or TIMM_DEFAULTS["input_size"])
        infos.append(
            BackboneInfo(
                name=backbone.name,
                feature_dim=feature_dim(backbone) if with_dims else None,
                input_size=tuple(int(v) for v in size),
                pretrained=pretrained and not backbone.is_pixels,
                here=here,
            )
        )
    return infos

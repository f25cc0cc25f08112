"""Building the frozen feature extractor: a timm model with its weights, for inference.

:func:`create_backbone` builds ``timm.create_model(name, num_classes=0)`` (pooled pre-logits)
with the weights a :class:`~featx.extraction.weights.Weights` names, in eval mode with
gradients off; :func:`fold_batchnorm` folds BatchNorm into the convolutions where the
model can be traced. Only here (and in the engine that runs the model) is torch imported.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from featx.core.errors import WeightsError
from featx.extraction.backbones import TIMM_DEFAULTS, Backbone
from featx.extraction.weights import Weights, hub_cache_dir, weights_failure

if TYPE_CHECKING:  # torch and timm are imported only when a model is built
    import torch

log = logging.getLogger(__name__)


def create_backbone(backbone: Backbone, weights: Weights, *, image_size: tuple[int, int] | None = None) -> torch.nn.Module:
    """Build the frozen feature extractor: ``num_classes=0`` (pooled pre-logits), eval mode.

    Args:
        backbone: the resolved backbone.
        weights: which weights to load.
        image_size: the input ``(height, width)``; when it differs from the pretrained
            config's, models built for a fixed size (ViTs) are built for this one (timm
            resamples their position embeddings); other models ignore it.

    Returns:
        A ``torch.nn.Module`` on the CPU, in eval mode, with gradients off.

    Raises:
        WeightsError: the weights cannot be obtained or do not fit the model.
    """
    import torch

    kwargs: dict[str, Any] = {"num_classes": 0}
    if weights.mode == "file":
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights.path)})
    elif weights.mode == "pretrained":
        cache = hub_cache_dir()
        kwargs.update(pretrained=True, **({"cache_dir": str(cache)} if cache and _takes_cache_dir() else {}))
    native = tuple(backbone.pretrained_cfg.get("input_size") or TIMM_DEFAULTS["input_size"])[1:]
    if image_size is not None and tuple(image_size) != native:
        kwargs["img_size"] = tuple(image_size)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weights.seed)  # random weights are reproducible; loaded ones overwrite them
            model = _create(backbone, kwargs)
    except Exception as error:  # timm, huggingface_hub, torch.load and safetensors all raise their own types
        raise WeightsError(weights_failure(backbone, weights, error)) from error
    model.eval()
    model.requires_grad_(False)
    return model


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Fold eval-mode BatchNorm layers into the convolutions before them, for inference.

    Uses ``torch.fx`` (``torch.fx.experimental.optimization.fuse``), so it applies where
    the model can be traced (ResNets, Inception v3, ...); other models (VGG and ViTs have
    control flow on tensors) come back unchanged. The features change only by float
    rounding (relative 1e-7, well inside what the cache key ignores, like a different
    convolution algorithm); CPU inference of resnet50 gets about 10 % faster, and
    small ResNets more, because each fused layer reads and writes its activations once.

    Args:
        model: a module in eval mode.

    Returns:
        The folded ``torch.fx.GraphModule``, or ``model`` itself.
    """
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model, inplace=True)
    except Exception as error:  # tracing fails on data-dependent control flow: keep the model
        log.debug("BatchNorm not folded (%s: %s)", type(error).__name__, error)
        return model


def _takes_cache_dir() -> bool:
    """Whether this timm's ``create_model`` accepts ``cache_dir`` (older 1.0 releases do not;
    they use the hub's default cache, which also follows ``HF_HOME``)."""
    import inspect

    import timm

    return "cache_dir" in inspect.signature(timm.create_model).parameters


def _create(backbone: Backbone, kwargs: dict[str, Any]) -> torch.nn.Module:
    import timm

    name = f"{backbone.architecture}.{backbone.tag}" if backbone.tag else backbone.architecture
    try:
        return timm.create_model(name, **kwargs)
    except TypeError as error:
        if "img_size" not in kwargs or "img_size" not in str(error):
            raise
    # a model that takes any input size (CNNs): build it without img_size
    return timm.create_model(name, **{k: v for k, v in kwargs.items() if k != "img_size"})

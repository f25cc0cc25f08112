"""Building the frozen feature extractor: a timm model with its weights, for inference.

:func:`create_backbone` builds ``timm.create_model(name, num_classes=0)`` (pooled pre-logits)
with the weights a :class:`~featx.extraction.weights.Weights` names, in eval mode with
gradients off; :func:`fold_batchnorm` folds BatchNorm into the convolutions where the
model can be traced. Only here (and in the engine that runs the model) is torch imported.

A checkpoint file is loaded strictly: every tensor of the model comes from the file (the
classifier head, which features do not use, excepted), or the load is a
:class:`~featx.core.errors.WeightsError` naming the first few missing, unexpected and
misshapen tensors. What featx adapted on the way (a known nesting such as Lightning's
``state_dict``, a known prefix such as ``module.`` or ``model.``, the head dropped) is
said in the built model's ``weights_loading`` attribute, which extraction writes into the
cache file's attribute of that name, and logged.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx.cache.layout import WEIGHTS_LOADING
from featx.core.errors import WeightsError
from featx.extraction.backbones import TIMM_DEFAULTS, Backbone
from featx.extraction.weights import WEIGHTS_OPTIONS, Weights, hub_cache_dir, weights_failure

if TYPE_CHECKING:  # torch and timm are imported only when a model is built
    import torch

log = logging.getLogger(__name__)

#: Where training frameworks nest a model's tensors in a checkpoint (Lightning, plain
#: ``torch.save({"model": ...})`` and the like), tried in this order.
CHECKPOINT_NESTING = ("state_dict", "model_state_dict", "model", "module", "net")
#: Prefixes that wrappers put before every tensor's name: DistributedDataParallel and
#: DataParallel (``module.``), Lightning modules holding the net as ``self.model``
#: (``model.``), ``torch.compile`` (``_orig_mod.``).
CHECKPOINT_PREFIXES = ("module.", "model.", "_orig_mod.")
SHOWN_KEYS = 4
#: one tensor of another shape in torch's ``load_state_dict`` error: its name, the file's shape, the model's
SIZE_MISMATCH = re.compile(
    r"size mismatch for ([^:]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from checkpoint, "
    r"the shape in current model is torch\.Size\((\[[^\]]*\])\)"
)


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
    adapted: list[str] = []
    if weights.mode == "file":
        try:
            state_dict, adapted = read_checkpoint(Path(str(weights.path)))
        except WeightsError:
            raise
        except Exception as error:  # torch.load and safetensors raise their own types
            raise WeightsError(weights_failure(backbone, weights, error)) from error
        head = _head_size(state_dict, backbone)
        # timm loads strictly (and applies the model's checkpoint filter) when the number of
        # classes it builds is the one the weights claim: build the file's own head, then drop it
        kwargs.update(
            pretrained=True,
            num_classes=head,
            pretrained_cfg_overlay={"state_dict": state_dict, "num_classes": head, "label_offset": 0, "source": ""},
        )
        if head:
            adapted.append(f"classifier head ({head} classes) dropped")
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
        mismatch = _mismatch(error) if weights.mode == "file" else ""
        if mismatch:
            raise WeightsError(
                f"cannot load weights from {weights.path} into {backbone.name}: {mismatch} (every tensor of the model "
                f"must come from the file, the classifier head excepted); {WEIGHTS_OPTIONS}"
            ) from error
        raise WeightsError(weights_failure(backbone, weights, error)) from error
    if weights.mode == "file":
        cfg = getattr(model, "pretrained_cfg", None)
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)  # the loaded copy only: keep no second one alive
        if kwargs["num_classes"]:
            model.reset_classifier(0)  # type: ignore[operator]  # every timm model has it
        note = "; ".join(adapted)
        if note:
            log.info("weights from %s: %s", weights.path, note)
        setattr(model, WEIGHTS_LOADING, note)
    model.eval()
    model.requires_grad_(False)
    return model


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Read a checkpoint file's tensors, unwrapped from a known nesting and prefix.

    A ``.safetensors`` file is read with safetensors, anything else with
    ``torch.load(weights_only=True)`` (no code in the file runs). A nesting of
    :data:`CHECKPOINT_NESTING` is unwrapped when the top level is not itself all tensors;
    a prefix of :data:`CHECKPOINT_PREFIXES` is stripped when every tensor's name has it.

    Args:
        path: the checkpoint file.

    Returns:
        The tensors by name, and what was adapted (for the record), in order.

    Raises:
        WeightsError: the file holds no tensors by name.
    """
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        content: Any = load_file(str(path), device="cpu")
    else:
        content = torch.load(path, map_location="cpu", weights_only=True)
    adapted: list[str] = []
    while isinstance(content, dict) and not _all_tensors(content):
        nest = next((name for name in CHECKPOINT_NESTING if isinstance(content.get(name), dict) and content[name]), None)
        if nest is None:
            break
        adapted.append(f"tensors read from its {nest!r} entry")
        content = content[nest]
    if not isinstance(content, dict) or not content or not _all_tensors(content):
        what = type(content).__name__ if not isinstance(content, dict) else "a dictionary of other things than tensors by name"
        raise WeightsError(
            f"the checkpoint {path} holds {what}, not a model's tensors by name (a state dict, or one under "
            f"{', '.join(repr(name) for name in CHECKPOINT_NESTING)}); {WEIGHTS_OPTIONS}"
        )
    stripped = True
    while stripped:
        stripped = False
        for prefix in CHECKPOINT_PREFIXES:
            if all(str(name).startswith(prefix) for name in content):
                content = {str(name)[len(prefix) :]: tensor for name, tensor in content.items()}
                adapted.append(f"prefix {prefix!r} stripped")
                stripped = True
    return {str(name): tensor for name, tensor in content.items()}, adapted


def _all_tensors(content: dict[Any, Any]) -> bool:
    import torch

    return all(isinstance(value, torch.Tensor) for value in content.values())


def _head_size(state_dict: dict[str, torch.Tensor], backbone: Backbone) -> int:
    """The number of classes of the checkpoint's classifier head (0 when it has none)."""
    names = backbone.pretrained_cfg.get("classifier") or ()
    for name in (names,) if isinstance(names, str) else names:
        weight = state_dict.get(f"{name}.weight")
        if weight is not None and weight.ndim >= 1:
            return int(weight.shape[0])
    return 0


def _mismatch(error: BaseException) -> str:
    """torch's strict ``load_state_dict`` error, short: counts and the first few names of each kind."""
    text = str(error)
    if "Error(s) in loading state_dict" not in text:
        return ""
    parts = []
    for line in text.split("\n"):
        line = line.strip()
        names = re.findall(r'"([^"]+)"', line)
        if line.startswith("Missing key(s)"):
            parts.append(f"{len(names)} of the model's tensors not in the file ({_first(names)})")
        elif line.startswith("Unexpected key(s)"):
            parts.append(f"{len(names)} tensor(s) in the file the model does not have ({_first(names)})")
    shapes = SIZE_MISMATCH.findall(text)
    if shapes:
        shown = [f"{name} {theirs} in the file, {ours} in the model" for name, theirs, ours in shapes]
        parts.append(f"{len(shapes)} of another shape ({_first(shown)})")
    return "; ".join(parts) or " ".join(text.split())[:300]


def _first(names: list[str]) -> str:
    shown = ", ".join(name[:80] for name in names[:SHOWN_KEYS])
    return shown + (f", and {len(names) - SHOWN_KEYS} more" if len(names) > SHOWN_KEYS else "")


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

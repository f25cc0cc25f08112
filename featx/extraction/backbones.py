"""timm backbones: name checks, weights, data config, and creating the frozen model.

Everything that goes into the cache key is resolved here *without* building the model:
the name and pretrained tag come from timm's registry (``get_pretrained_cfg``, a dict
lookup), the weights identity from the tag or the checkpoint's sha256. So a cache hit
never instantiates or loads a network.

Weights, as ``--weights`` takes them:

* ``pretrained`` (default): timm's own loading, which reads the Hugging Face hub cache
  (``$HF_HOME/hub``, ``HF_HUB_CACHE``) and honours ``HF_HUB_OFFLINE``. Identity: the
  hub id / address of the tag (``pretrained:timm/resnet50.a1_in1k``).
* a path to a ``.safetensors`` or ``.pth`` state dict (a full classifier checkpoint; the
  classifier is dropped). Loaded through timm's ``pretrained_cfg_overlay=dict(file=...)``
  so that timm's checkpoint filters apply. Identity: ``file:sha256:<hex>`` (the tag is
  kept by the overlay, so it cannot identify the weights).
* ``random``: explicit random initialisation, seeded. Identity: ``random:seed=<n>``.

Failing to get weights is a :class:`WeightsError` naming the three options; featx never
falls back to random weights by itself.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx.core.errors import ConfigError, UnknownNameError, WeightsError
from featx.core.hashing import file_sha256
from featx.core.registry import closest_names
from featx.extraction.dataconfig import DataConfig, config_from_mapping

if TYPE_CHECKING:  # torch and timm are imported only when a model is built
    import torch

log = logging.getLogger(__name__)

CLASSIC_BACKBONES = ("vgg16", "vgg19", "inception_v3", "resnet50")
WEIGHT_KEYWORDS = ("pretrained", "random")
WEIGHTS_OPTIONS = (
    "--weights pretrained (network access, or the weights already in the Hugging Face hub cache), "
    "--weights PATH (a local .safetensors or .pth checkpoint), or --weights random (random initialisation, explicitly)"
)
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
    def weights_source(self) -> str:
        """Where timm would fetch the pretrained weights from ("" when nowhere)."""
        cfg = self.pretrained_cfg
        return str(cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file") or "")


@dataclass(frozen=True)
class Weights:
    """Which weights to load, and their identity for the cache key.

    Attributes:
        mode: "pretrained", "file" or "random".
        identity: ``pretrained:<hub id or address>``, ``file:sha256:<hex>`` or ``random:seed=<n>``.
        path: the checkpoint file (mode "file").
        seed: the initialisation seed (mode "random").
    """

    mode: str
    identity: str
    path: Path | None = None
    seed: int = 0

    @property
    def sha256(self) -> str:
        """The checkpoint's sha256, or "" when not a file."""
        return self.identity.rsplit(":", 1)[-1] if self.mode == "file" else ""


def resolve_backbone(name: str) -> Backbone:
    """Check a timm model name and fetch its pretrained config, without building it.

    Args:
        name: a timm architecture, optionally with a pretrained tag ("vgg16.tv_in1k").

    Returns:
        The backbone description.

    Raises:
        UnknownNameError: timm has no such model or tag; the message names the closest.
    """
    import timm
    from timm.models import get_pretrained_cfg

    cleaned = name.strip()
    if cleaned.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        raise ConfigError(f"{name!r}: hub and local-dir model names are not supported; use a timm model name and --weights PATH for a local checkpoint")
    architecture, _, tag = cleaned.partition(".")
    if not architecture or not timm.is_model(architecture):
        close = closest_names(architecture.lower(), timm.list_models(), n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown backbone {name!r}{hint} (any timm model name works, e.g. {', '.join(CLASSIC_BACKBONES)}; list them with timm.list_models())")
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


def resolve_weights(value: str | os.PathLike[str], backbone: Backbone, *, seed: int = 0) -> Weights:
    """Turn ``--weights`` into a :class:`Weights`, hashing a checkpoint file.

    The words ``pretrained`` and ``random`` are keywords; a file of that name is given
    as ``./random``.

    Raises:
        WeightsError: the file does not exist, or the model has no pretrained weights.
    """
    text = os.fspath(value)
    if text == "random":
        return Weights(mode="random", identity=f"random:seed={seed}", seed=seed)
    if text == "pretrained":
        if not backbone.weights_source:
            raise WeightsError(f"timm has no pretrained weights for {backbone.name}; use {WEIGHTS_OPTIONS}")
        return Weights(mode="pretrained", identity=f"pretrained:{backbone.weights_source}")
    path = Path(text).expanduser()
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "not found"
        raise WeightsError(f"weights file {path} {what}; use {WEIGHTS_OPTIONS}")
    return Weights(mode="file", identity=f"file:sha256:{file_sha256(path)}", path=path)


def hub_cache_dir() -> Path | None:
    """The Hugging Face hub cache named by the environment *now* (``HF_HUB_CACHE``, ``HF_HOME``).

    huggingface_hub reads these once, when first imported; reading them per call lets a
    long-lived process (or a test) point featx at another cache.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return None


def pretrained_cached(backbone: Backbone) -> bool:
    """Whether this backbone's pretrained weights are on this machine, where timm looks first.

    Checks without any network access: weights published on the Hugging Face hub
    (``hf_hub_id``, what timm 1.0 loads from when it is set) in the hub cache, else
    weights published at a URL in torch's hub checkpoint folder. Used by ``featx demo``
    to choose pretrained weights only when it can have them offline.
    """
    cfg = backbone.pretrained_cfg
    hub_id = str(cfg.get("hf_hub_id") or "")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = hub_id.partition("@")
        names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
        cache = hub_cache_dir()
        return any(
            isinstance(try_to_load_from_cache(repo, name, cache_dir=str(cache) if cache else None, revision=revision or None), str)
            for name in names
        )
    url = str(cfg.get("url") or "")
    if url:
        torch_home = Path(os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch")
        return (torch_home.expanduser() / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]).is_file()
    return False


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
        raise WeightsError(_weights_failure(backbone, weights, error)) from error
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


def _weights_failure(backbone: Backbone, weights: Weights, error: BaseException) -> str:
    reason = " ".join(str(error).split())[:300] or type(error).__name__
    if weights.mode == "file":
        return f"cannot load weights from {weights.path} into {backbone.name}: {reason}; use {WEIGHTS_OPTIONS}"
    if weights.mode == "pretrained":
        cache = hub_cache_dir() or Path("~/.cache/huggingface/hub")
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"} else ""
        return (
            f"cannot get pretrained weights for {backbone.name} ({backbone.weights_source}){offline}: "
            f"{type(error).__name__}: {reason}; the hub cache looked in is {cache}; use {WEIGHTS_OPTIONS}"
        )
    return f"cannot build {backbone.name}: {reason}"

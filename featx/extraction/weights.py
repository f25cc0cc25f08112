"""Backbone weights: which ones to load, and their identity for the cache key.

Weights, as ``--weights`` (the ``weights`` field of :class:`~featx.extraction.config.ExtractConfig`)
takes them:

* ``pretrained`` (default): timm's own loading, which reads the Hugging Face hub cache
  (``$HF_HOME/hub``, ``HF_HUB_CACHE``) and honours ``HF_HUB_OFFLINE``. Identity: the
  hub id / address of the tag (``pretrained:timm/resnet50.a1_in1k``).
* a path to a ``.safetensors`` or ``.pth`` state dict (a full classifier checkpoint; the
  classifier is dropped). Loaded strictly, through timm's ``pretrained_cfg_overlay`` so that
  timm's checkpoint filters apply (see :mod:`featx.extraction.models`). Identity:
  ``file:sha256:<hex>`` (the tag is kept by the overlay, so it cannot identify the weights).
* ``random``: explicit random initialisation, seeded. Identity: ``random:seed=<n>``.

Resolving weights never builds a model: a cache hit costs a dictionary lookup (or a
checkpoint's sha256). Failing to get weights is a :class:`~featx.core.errors.WeightsError`
naming the three options; featx never falls back to random weights by itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featx.core.errors import WeightsError
from featx.core.hashing import file_sha256

if TYPE_CHECKING:
    from featx.extraction.backbones import Backbone

WEIGHT_KEYWORDS = ("pretrained", "random")
WEIGHTS_OPTIONS = (
    "weights can be: pretrained (network access, or the weights already in the Hugging Face hub cache), "
    "a path to a local .safetensors or .pth checkpoint, or random (random initialisation, explicitly)"
)


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
            raise WeightsError(f"timm has no pretrained weights for {backbone.name}; {WEIGHTS_OPTIONS}")
        return Weights(mode="pretrained", identity=f"pretrained:{backbone.weights_source}")
    path = Path(text).expanduser()
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "not found"
        raise WeightsError(f"weights file {path} {what}; {WEIGHTS_OPTIONS}")
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


def weights_failure(backbone: Backbone, weights: Weights, error: BaseException) -> str:
    reason = " ".join(str(error).split())[:300] or type(error).__name__
    if weights.mode == "file":
        return f"cannot load weights from {weights.path} into {backbone.name}: {reason}; {WEIGHTS_OPTIONS}"
    if weights.mode == "pretrained":
        cache = hub_cache_dir() or Path("~/.cache/huggingface/hub")
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"} else ""
        return (
            f"cannot get pretrained weights for {backbone.name} ({backbone.weights_source}){offline}: "
            f"{type(error).__name__}: {reason}; the hub cache looked in is {cache}; {WEIGHTS_OPTIONS}"
        )
    return f"cannot build {backbone.name}: {reason}"

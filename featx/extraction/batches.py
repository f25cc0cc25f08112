"""Batches of uint8 pixels for one split, in order, ready to go to the device.

Two sources:

* pixels held in memory (CIFAR, MNIST, digits): a batch is a slice of the uint8 array at
  its native size (32 x 32 CIFAR is 3 KB an image; resized to 224 x 224 float it would
  be 600 KB), pinned when the device is CUDA.
* image files (image folders): DataLoader workers read and decode whole batches (one
  task per batch, so per-image inter-process overhead vanishes) and return uint8
  arrays. An image that timm's transform would *shrink* is resized and cropped in the
  worker by timm's own PIL transform (exact reference; keeps the batch small); smaller
  images travel at native size and are resized on the device.

Images of different sizes in one batch are grouped by size: a :class:`PixelBatch` holds
one uint8 tensor per size with the rows it fills. A file that cannot be decoded stops
the run with :class:`ImageReadError` naming it (raised in the main process, so the CLI
prints one line, not a worker traceback).
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from featx.core.errors import ImageReadError
from featx.extraction.dataconfig import DataConfig, shrinks
from featx.extraction.datasets import ImageSplit

log = logging.getLogger(__name__)


@dataclass
class PixelGroup:
    """Same-sized images of one batch.

    Attributes:
        rows: ``(k,)`` int64 positions of these images within the batch.
        pixels: ``(k, height, width, channels)`` uint8.
        final: already resized and cropped to the model input (by timm's PIL transform).
    """

    rows: torch.Tensor
    pixels: torch.Tensor
    final: bool = False


@dataclass
class PixelBatch:
    """One batch: rows ``[start, start + size)`` of a split, grouped by image size.

    ``error`` carries a decoding failure from a worker to the main process.
    """

    start: int
    size: int
    groups: list[PixelGroup] = field(default_factory=list)
    error: str | None = None

    def pin_memory(self) -> PixelBatch:
        """Called by DataLoader(pin_memory=True): page-lock the pixels for async copies."""
        for group in self.groups:
            group.pixels = group.pixels.pin_memory()
        return self


def default_workers(device: torch.device) -> int:
    """DataLoader workers for decoding image files.

    CUDA: one per CPU core up to 16 (decoding must keep up with the GPU). CPU with up to
    4 cores: none. The model's intra-op threads already use every core, and a decoding
    process that preempts one of them stalls the others at their next barrier: on 2
    cores, resnet18 at 112 px ran at 304 images/s decoding in-process and 287 with one
    worker. Larger CPUs get two.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    if device.type == "cuda":
        return max(1, min(16, cores))
    return 0 if cores <= 4 else 2


def iter_batches(
    split: ImageSplit,
    *,
    config: DataConfig,
    batch_size: int,
    start: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[PixelBatch]:
    """Yield the split's images from row ``start`` on, ``batch_size`` at a time, in order.

    Args:
        split: the images (in memory or as files).
        config: the data config (decides which files are shrunk in workers).
        batch_size: images per batch.
        start: first row (to resume a partial extraction).
        num_workers: DataLoader worker processes for files (0: decode in this process).
        pin_memory: page-lock batches (for CUDA).

    Yields:
        :class:`PixelBatch` covering consecutive rows.

    Raises:
        ImageReadError: an image file cannot be read or decoded.
    """
    ranges = [(s, min(s + batch_size, len(split))) for s in range(start, len(split), batch_size)]
    if split.pixels is not None:
        yield from _array_batches(split.pixels, ranges, pin_memory=pin_memory)
        return
    dataset = FileBatches(split.files or (), ranges, config)
    loader = DataLoader(
        dataset,
        batch_size=None,  # each item is already a batch
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
    )
    for batch in loader:
        if batch.error:
            raise ImageReadError(batch.error)
        yield batch


def _array_batches(pixels: np.ndarray, ranges: list[tuple[int, int]], *, pin_memory: bool) -> Iterator[PixelBatch]:
    for begin, end in ranges:
        chunk = pixels[begin:end]
        # a read-only array (a data set cached in memory, like shapes) is copied: torch warns on those
        tensor = torch.from_numpy(np.ascontiguousarray(chunk) if chunk.flags.writeable else chunk.copy())
        if pin_memory:
            tensor = tensor.pin_memory()
        yield PixelBatch(start=begin, size=end - begin, groups=[PixelGroup(rows=torch.arange(end - begin), pixels=tensor)])


class FileBatches(Dataset):
    """A map-style dataset whose item ``i`` is the ``i``-th batch of decoded image files."""

    def __init__(self, files: tuple[str, ...], ranges: list[tuple[int, int]], config: DataConfig) -> None:
        self.files = files
        self.ranges = ranges
        self.config = config
        self._reference: Any = None  # timm's PIL transform, built lazily in each worker

    def __len__(self) -> int:
        return len(self.ranges)

    def __getitem__(self, index: int) -> PixelBatch:
        begin, end = self.ranges[index]
        by_size: dict[tuple[int, int, bool], tuple[list[int], list[np.ndarray]]] = {}
        for row, path in enumerate(self.files[begin:end]):
            try:
                image, final = self._load(path)
            except ImageReadError as error:
                return PixelBatch(start=begin, size=end - begin, error=str(error))
            rows, arrays = by_size.setdefault((image.shape[0], image.shape[1], final), ([], []))
            rows.append(row)
            arrays.append(image)
        groups = [
            PixelGroup(rows=torch.tensor(rows, dtype=torch.int64), pixels=torch.from_numpy(np.stack(arrays)), final=final)
            for (_, _, final), (rows, arrays) in by_size.items()
        ]
        return PixelBatch(start=begin, size=end - begin, groups=groups)

    def _decode(self, item: str) -> np.ndarray:
        """The pixels of one item: here a file, decoded (a subclass may hold images in memory)."""
        return decode_image(item)

    def _load(self, path: str) -> tuple[np.ndarray, bool]:
        """Decode one file to ``(height, width, 3)`` uint8; shrink it here if timm would."""
        image = self._decode(path)
        height, width = image.shape[:2]
        if shrinks(height, width, self.config):
            from PIL import Image

            if self._reference is None:
                from timm.data import create_transform

                # timm's eval transform without ToTensor/Normalize: uint8 CHW at the input size
                self._reference = create_transform(**self.config.timm_kwargs(), use_prefetcher=True)
            return np.ascontiguousarray(np.asarray(self._reference(Image.fromarray(image))).transpose(1, 2, 0)), True
        return image, False


def decode_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file with PIL, as timm's reference does, to RGB ``(height, width, 3)``
    uint8 (grey, palette, CMYK and alpha converted by ``convert("RGB")``). Grey images of
    16 bits (``I;16`` PNGs, or ``I``) keep their high byte: PIL's own conversion would clip
    every value above 255 to white.

    Only a regular file (or a link to one) is opened: a named pipe would block the reader
    forever. An image larger than PIL's decompression-bomb limit (but under twice it,
    where PIL refuses) is decoded, with one line in the log naming it instead of PIL's
    warning.

    (torchvision's JPEG decoder is three times faster and bit-identical on CIFAR, but
    deprecated since torchvision 0.29; decoding is a small share of the time here.)

    Raises:
        ImageReadError: the file is missing, not a regular file, or not a decodable
            image; names the file.
    """
    from PIL import Image, UnidentifiedImageError

    _quiet_bomb_warning()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ImageReadError(
                f"cannot read image {path}: it is not a regular file (a pipe, a socket or a device); "
                "remove it, or pass --skip-bad to leave such files out"
            )
        with Image.open(path) as handle:
            width, height = handle.size
            if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
                log.warning("%s is %d x %d pixels, beyond PIL's decompression-bomb limit; decoding it anyway", path, width, height)
            if handle.mode.startswith("I"):  # I;16, I;16B, I: integer grey of up to 16 bits
                grey = (np.clip(np.asarray(handle, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            return np.asarray(handle.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageReadError(
            f"cannot read image {path}: {error}; fix or remove the file, or pass --skip-bad to leave such files out"
        ) from None


def _quiet_bomb_warning() -> None:
    """PIL's DecompressionBombWarning is replaced by featx's own log line (decode_image);
    the filter is set once per process (DataLoader workers included)."""
    global _bomb_filter_set
    if not _bomb_filter_set:
        from PIL import Image

        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        _bomb_filter_set = True


_bomb_filter_set = False


def readable_image(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`decode_image` decodes ``path`` (it decodes the whole image)."""
    try:
        decode_image(path)
    except ImageReadError:
        return False
    return True

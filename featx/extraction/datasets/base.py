"""What every data set source returns: splits of uint8 pixels or image files, with labels.

A source (CIFAR pickles, idx files, scikit-learn digits, an image folder) turns what is
on disk into an :class:`ImageDataset`: class names, a ``train`` and a ``test``
:class:`ImageSplit`, and an identity (name + content fingerprint) that goes into the
cache key. Small images are held as one uint8 array at their native size (CIFAR-10's
50,000 training images take 150 MB); image folders are held as file lists and decoded
batch by batch. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from featx.core.errors import DatasetError

SPLITS = ("train", "test")
DEFAULT_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class DatasetRequest:
    """What a source needs to load a data set.

    Attributes:
        data_dir: where downloadable data sets live (``--data-dir``).
        argument: the part after ``:`` in the spec (an image folder's path), if any.
        download: whether missing files may be downloaded.
        seed: seed of any split the source has to make itself.
        test_fraction: share of each class put in test when the source has no split.
    """

    data_dir: Path
    argument: str | None = None
    download: bool = True
    seed: int = 0
    test_fraction: float = DEFAULT_TEST_FRACTION


@dataclass(frozen=True, eq=False)
class ImageSplit:
    """The images and labels of one split.

    Exactly one of ``pixels`` and ``files`` is set.

    Attributes:
        labels: ``(n_images,)`` int64 class indices.
        pixels: ``(n_images, height, width, channels)`` uint8, channels 1 (grey) or 3 (RGB).
        files: one image file path per label, decoded when the split is read. Plain
            strings: a ``Path`` costs 300 bytes more, 18 MB more for 60,000 images.
    """

    labels: np.ndarray
    pixels: np.ndarray | None = None
    files: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if (self.pixels is None) == (self.files is None):
            raise ValueError("an ImageSplit holds either pixels or files")
        n_images = len(self.pixels) if self.pixels is not None else len(self.files or ())
        if n_images != len(self.labels):
            raise ValueError(f"{n_images} images but {len(self.labels)} labels")
        if self.pixels is not None and (self.pixels.dtype != np.uint8 or self.pixels.ndim != 4 or self.pixels.shape[-1] not in (1, 3)):
            raise ValueError(f"pixels must be uint8 (n, height, width, 1 or 3), got {self.pixels.dtype} {self.pixels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, start: int, stop: int) -> ImageSplit:
        """Rows ``[start, stop)``, without copying pixels (a view) or touching other files.

        A shard of a sharded extraction reads only its own block: image files outside
        it are never opened.
        """
        if self.pixels is not None:
            return ImageSplit(labels=self.labels[start:stop], pixels=self.pixels[start:stop])
        return ImageSplit(labels=self.labels[start:stop], files=(self.files or ())[start:stop])

    def take(self, indices: np.ndarray) -> ImageSplit:
        """The images at ``indices`` (in that order)."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.pixels is not None:
            return ImageSplit(labels=self.labels[indices], pixels=self.pixels[indices])
        files = self.files or ()
        return ImageSplit(labels=self.labels[indices], files=tuple(files[i] for i in indices))


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A data set ready for extraction.

    Attributes:
        name: its folder in the feature cache ("cifar10", or an image folder's name).
        class_names: the name of each label index.
        splits: ``"train"`` and ``"test"`` splits.
        identity: everything about the data that changes the features: source, content
            fingerprint, ``limit``, split seed. Part of the cache key.
        location: where it was read from, for messages and the file's attributes.
    """

    name: str
    class_names: tuple[str, ...]
    splits: Mapping[str, ImageSplit]
    identity: Mapping[str, Any] = field(default_factory=dict)
    location: str = ""

    def with_limit(self, limit: int | None, *, seed: int) -> ImageDataset:
        """Keep a class-balanced subset of at most ``limit`` images per split.

        The choice is seeded and the kept images stay in their original order;
        ``limit`` and ``seed`` become part of the identity.
        """
        if limit is None:
            return self
        if limit < 1:
            raise DatasetError(f"--limit must be a positive number of images per split, got {limit}")
        splits = {name: split.take(balanced_subset(split.labels, limit, seed=seed)) for name, split in self.splits.items()}
        return replace(self, splits=splits, identity={**self.identity, "limit": limit, "limit_seed": seed})


def balanced_subset(labels: np.ndarray, limit: int, *, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` items, spread as evenly over classes as they allow.

    Classes take turns (in a seeded random order within each class), so a class with
    too few items leaves its share to the others.

    Args:
        labels: ``(n,)`` class indices.
        limit: how many to keep.
        seed: seed of the choice within each class.

    Returns:
        Sorted ``(min(limit, n),)`` int64 indices.
    """
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == value)) for value in np.unique(labels)]
    longest = max((len(members) for members in per_class), default=0)
    # round-robin: rank r of every class before rank r + 1 of any class
    ranked = [members[rank] for rank in range(longest) for members in per_class if rank < len(members)]
    return np.sort(np.asarray(ranked[:limit], dtype=np.int64))


def stratified_split(labels: np.ndarray, test_fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split into train and test indices.

    Each class with at least two items puts ``round(n * test_fraction)`` of them (at
    least one, at most ``n - 1``) in test, so every class is present in both splits.

    Returns:
        ``(train_indices, test_indices)``, each sorted int64.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        n_test = min(max(round(len(members) * test_fraction), 1), len(members) - 1) if len(members) > 1 else 0
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)).astype(np.int64), np.sort(np.concatenate(test)).astype(np.int64)


def grey_to_array(images: np.ndarray) -> np.ndarray:
    """``(n, h, w)`` grey uint8 -> ``(n, h, w, 1)``; the device repeats it to 3 channels."""
    return np.array(images[..., None], dtype=np.uint8, order="C")  # a writable copy

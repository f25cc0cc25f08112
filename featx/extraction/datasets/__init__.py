"""Data set sources: a registry of names, and one loader per on-disk format.

``--dataset`` takes a registered name (``cifar10``, ``mnist``, ``digits``, ...) or
``imagefolder:PATH``. :func:`load_dataset` returns an :class:`ImageDataset` whose
identity (name + content fingerprint + limit/seed) goes into the cache key. This package
never imports torch: images are decoded later, batch by batch (:mod:`featx.extraction.batches`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from featx.core import paths
from featx.core.errors import DatasetError
from featx.core.registry import lookup
from featx.extraction.datasets.base import DEFAULT_TEST_FRACTION, SPLITS, DatasetRequest, ImageDataset, ImageSplit
from featx.extraction.datasets.cifar import load_cifar10, load_cifar100
from featx.extraction.datasets.digits import load_digits
from featx.extraction.datasets.idx import load_fashion_mnist, load_mnist
from featx.extraction.datasets.imagefolder import folder_name, load_imagefolder
from featx.extraction.datasets.shapes import load_shapes

__all__ = [
    "DATASETS",
    "SPLITS",
    "DatasetRequest",
    "DatasetSource",
    "ImageDataset",
    "ImageSplit",
    "dataset_name",
    "list_datasets",
    "load_dataset",
]


@dataclass(frozen=True)
class DatasetSource:
    """A registered data set: its loader, whether it takes a path, and a one-line summary."""

    load: Callable[[DatasetRequest], ImageDataset]
    summary: str
    takes_path: bool = False


DATASETS: dict[str, DatasetSource] = {
    "cifar10": DatasetSource(load_cifar10, "CIFAR-10, 32x32 colour, 10 classes, 50k/10k (python tarball, downloaded when missing)"),
    "cifar100": DatasetSource(load_cifar100, "CIFAR-100, 32x32 colour, 100 classes, 50k/10k (python tarball, downloaded when missing)"),
    "mnist": DatasetSource(load_mnist, "MNIST digits, 28x28 grey, 60k/10k (idx files, downloaded when missing)"),
    "fashion-mnist": DatasetSource(
        load_fashion_mnist, "Fashion-MNIST, 28x28 grey, 10 classes, 60k/10k (idx files, downloaded when missing)"
    ),
    "digits": DatasetSource(load_digits, "scikit-learn's digits, 8x8 grey, 1,797 images, seeded 80/20 split (no download)"),
    "shapes": DatasetSource(
        load_shapes, "six shapes of random colour, size and place, 64x64 colour, 1,200/600, drawn by featx (no download)"
    ),
    "imagefolder": DatasetSource(
        load_imagefolder, "imagefolder:PATH, PATH/train/<class>/* + PATH/test/<class>/*, or PATH/<class>/* (seeded split)", takes_path=True
    ),
}


def list_datasets() -> list[str]:
    """The registered data set kinds, sorted (``imagefolder`` takes ``:PATH``)."""
    return sorted(DATASETS)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"imagefolder:~/pets"`` into ``("imagefolder", "~/pets")``; check the kind.

    Raises:
        UnknownNameError: the kind is not registered (the message names close ones).
        DatasetError: a path was given to a kind that takes none, or none to one that does.
    """
    kind, sep, argument = spec.partition(":")
    source = lookup(DATASETS, kind.strip().lower(), kind="dataset")
    if source.takes_path and not argument:
        raise DatasetError(f"{kind} needs a path: --dataset {kind}:PATH")
    if sep and not source.takes_path:
        raise DatasetError(f"{kind} takes no path ({spec!r}); use --data-dir to say where its files are")
    return kind.strip().lower(), (argument or None)


def dataset_name(spec: str) -> str:
    """The cache folder a spec's features go to, without reading any data.

    ``"cifar10"`` -> ``"cifar10"``; ``"imagefolder:~/data/pets"`` -> ``"pets"``. Stage two
    uses it to find features by backbone name.
    """
    kind, argument = parse_spec(spec)
    return folder_name(argument) if argument else kind


def load_dataset(
    spec: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    download: bool = True,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> ImageDataset:
    """Load a data set by spec, optionally keeping a class-balanced subset.

    Args:
        spec: a registered name, or ``imagefolder:PATH``.
        data_dir: where downloadable data sets live (default ``~/.cache/featx/data`` or
            ``FEATX_DATA_DIR``).
        limit: keep at most this many images per split, balanced over classes.
        seed: seed of the subset and of any split the source makes.
        download: allow downloading missing files of a registered data set.
        test_fraction: test share for sources without a split (digits, class folders).

    Returns:
        The data set, with ``train`` and ``test`` splits.

    Raises:
        UnknownNameError: unknown data set name.
        DatasetError: missing, malformed, or not downloadable.
    """
    kind, argument = parse_spec(spec)
    request = DatasetRequest(
        data_dir=paths.data_dir(data_dir), argument=argument, download=download, seed=seed, test_fraction=test_fraction
    )
    dataset = DATASETS[kind].load(request)
    for split in SPLITS:
        if split not in dataset.splits or len(dataset.splits[split]) == 0:
            raise DatasetError(f"{spec}: the {split} split is empty (read from {dataset.location})")
    return dataset.with_limit(limit, seed=seed)

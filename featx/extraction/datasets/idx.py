"""MNIST and Fashion-MNIST in their standard idx files.

Accepted on disk, in ``--data-dir/mnist`` (or ``fashion-mnist``): the four files
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each either gzipped (``.gz``, as published) or not. When
missing, the ``.gz`` files are downloaded from the published mirrors and checked against
their MD5. Images are 28 x 28 grey, held as one channel and repeated to three on the
device. Fingerprint: sha256 of the four files' bytes as stored.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featx.core.errors import DatasetError
from featx.extraction.datasets.base import DatasetRequest, ImageDataset, ImageSplit, grey_to_array
from featx.extraction.datasets.download import Resource, fetch

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxLayout:
    """One idx data set: its folder, class names and published files."""

    name: str
    class_names: tuple[str, ...]
    mirrors: tuple[str, ...]
    md5: dict[str, str]

    def resource(self, stem: str) -> Resource:
        filename = stem + ".gz"
        return Resource(filename, tuple(mirror + filename for mirror in self.mirrors), self.md5[stem])


MNIST = IdxLayout(
    name="mnist",
    class_names=tuple(str(i) for i in range(10)),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    md5={
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

FASHION_MNIST = IdxLayout(
    name="fashion-mnist",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
)


def load_mnist(request: DatasetRequest) -> ImageDataset:
    """MNIST handwritten digits (60,000 + 10,000 grey 28 x 28 images); see the module doc."""
    return load_idx(MNIST, request.data_dir, download=request.download)


def load_fashion_mnist(request: DatasetRequest) -> ImageDataset:
    """Fashion-MNIST clothing (60,000 + 10,000 grey 28 x 28 images); see the module doc."""
    return load_idx(FASHION_MNIST, request.data_dir, download=request.download)


def load_idx(layout: IdxLayout, data_dir: Path, *, download: bool) -> ImageDataset:
    """Read one idx data set from ``data_dir/<name>`` (downloading missing files if allowed).

    Raises:
        DatasetError: a file is missing and cannot be downloaded, or is not an idx file.
    """
    if data_dir.is_file():
        raise DatasetError(f"{layout.name}: --data-dir {data_dir} is a file, not a folder")
    folder = data_dir / layout.name
    digest = hashlib.sha256()
    splits = {}
    for split, (image_stem, label_stem) in FILES.items():
        images = _read_idx(_find(layout, folder, image_stem, download=download), IMAGES_MAGIC, layout, digest)
        labels = _read_idx(_find(layout, folder, label_stem, download=download), LABELS_MAGIC, layout, digest)
        if len(images) != len(labels):
            raise DatasetError(f"{layout.name}: {split} has {len(images)} images but {len(labels)} labels in {folder}")
        if len(labels) and labels.max() >= len(layout.class_names):
            raise DatasetError(f"{layout.name}: {split} labels exceed {len(layout.class_names) - 1} in {folder}")
        splits[split] = ImageSplit(labels=labels.astype(np.int64), pixels=grey_to_array(images))
    return ImageDataset(
        name=layout.name,
        class_names=layout.class_names,
        splits=splits,
        identity={"dataset": layout.name, "format": "idx", "fingerprint": digest.hexdigest()},
        location=str(folder),
    )


def _find(layout: IdxLayout, folder: Path, stem: str, *, download: bool) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return fetch(layout.resource(stem), folder, download=download, what=layout.name, alternative=f" (or unzipped as {stem})")


def _read_idx(path: Path, magic: int, layout: IdxLayout, digest: Any) -> np.ndarray:
    """Parse one idx file: a big-endian int32 magic, one int32 per dimension, then uint8 data."""
    raw = path.read_bytes()
    digest.update(path.name.encode() + b"\0" + raw)
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DatasetError(f"{layout.name}: {path} is not a readable gzip file ({error}); delete it and try again") from None
    n_dims = magic & 0xFF
    header_bytes = 4 * (1 + n_dims)
    if len(raw) < header_bytes or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise DatasetError(f"{layout.name}: {path} is not an idx file of the expected kind (magic {found!r}, expected {magic})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    expected = int(np.prod(shape))
    if len(raw) - header_bytes != expected:
        raise DatasetError(
            f"{layout.name}: {path} holds {len(raw) - header_bytes} bytes of data, its header says {shape} ({expected}); the file is truncated or damaged"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(shape)

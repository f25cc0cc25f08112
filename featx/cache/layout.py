"""The cache layout, defined once: file names, HDF5 names, attribute names, the checksum recipe.

One entry is one HDF5 file, ``<cache>/<dataset>/<backbone>__<key>.h5`` (:class:`EntryName`
names it), written as ``<backbone>__<key>.partial.h5`` until complete; a sharded
extraction keeps its shard files under ``<dataset>/.shards/<backbone>__<key>/``::

    /<split>/features   float32 [N, D], chunked by whole rows (about 1 MiB a chunk)
    /<split>/labels     int64   [N]
    root attrs          featx_version, format_version, key, dataset, class_names (JSON),
                        backbone, timm_version, torch_version, weights, input_size,
                        interpolation, mean, std, precision, created (ISO 8601), ...
    split attrs         complete (bool), n_done, seconds, images_per_second, device,
                        features_sha256, labels_sha256

The writer, the reader and the stitcher all take these names from here.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featx.core import paths
from featx.core.hashing import short_hash
from featx.core.paths import safe_name

FORMAT_VERSION = 1
SPLITS = ("train", "test")
SUFFIX = ".h5"
PARTIAL_SUFFIX = ".partial.h5"
SHARDS_DIR = ".shards"
#: HDF5 chunks of whole rows, about this many bytes each
CHUNK_BYTES = 1 << 20
#: between the backbone and the key in an entry's file name
SEPARATOR = "__"

# HDF5 datasets of a split
FEATURES = "features"
LABELS = "labels"

#: the first bytes of every HDF5 file featx writes
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# root attributes
KEY = "key"
FORMAT = "format_version"
FEATX_VERSION = "featx_version"
CREATED = "created"
COMPLETE = "complete"
CLASS_NAMES = "class_names"
FEATURE_DIM = "feature_dim"
DATASET = "dataset"
BACKBONE = "backbone"
WEIGHTS = "weights"
#: how a checkpoint file was adapted to the model when loaded (a nesting unwrapped, a
#: prefix stripped, the head dropped); "" when loaded as it is; only for file weights
WEIGHTS_LOADING = "weights_loading"
INPUT_SIZE = "input_size"
INTERPOLATION = "interpolation"
MEAN = "mean"
STD = "std"
CROP_PCT = "crop_pct"
PRECISION = "precision"
#: a class-balanced subset of this many images per split (``--limit``); absent or "" for the full data set
LIMIT = "limit"
#: a stitched entry: the shard files it reads (JSON list, relative to the entry) and their count
SHARDS = "shards"
SHARD_COUNT = "shard_count"
#: a shard file: which shard, and per split ``[start, stop, rows of the whole split]``
SHARD_INDEX = "shard_index"
SHARD_ROWS = "shard_rows"
SHARD_ATTRS = (SHARD_INDEX, SHARD_COUNT, SHARD_ROWS)
#: the name of a shard file: ``shard-K-of-N.h5``
SHARD_FILE = re.compile(r"^shard-(\d+)-of-(\d+)\.h5$")

# split attributes
N_DONE = "n_done"
SECONDS = "seconds"
IMAGES_PER_SECOND = "images_per_second"
DEVICE = "device"
FEATURES_SHA256 = "features_sha256"
LABELS_SHA256 = "labels_sha256"


@dataclass(frozen=True)
class EntryName:
    """The name of a cache entry, ``<backbone>__<key>`` (its file is ``<backbone>__<key>.h5``).

    Attributes:
        stem: the name without suffix; also the name of the entry's shard folder.
    """

    stem: str

    @classmethod
    def make(cls, backbone: str, key: str) -> EntryName:
        """The entry of ``backbone`` (made file-name-safe) and ``key``."""
        return cls(f"{safe_name(backbone)}{SEPARATOR}{key}")

    @classmethod
    def parse(cls, name: str) -> EntryName:
        """From a file name or stem: ``resnet50__3f2a.h5``, ``resnet50__3f2a.partial.h5`` or ``resnet50__3f2a``."""
        return cls(name[: -len(PARTIAL_SUFFIX)] if name.endswith(PARTIAL_SUFFIX) else name.removesuffix(SUFFIX))

    @classmethod
    def of(cls, path: Path) -> EntryName:
        """The entry a final, partial or shard-folder path belongs to."""
        return cls.parse(path.name)

    @property
    def backbone(self) -> str:
        """The part before the last ``__`` (a name without one, from another tool, is all backbone)."""
        return self.stem.rpartition(SEPARATOR)[0] or self.stem

    @property
    def key(self) -> str:
        """The part after the last ``__`` (a name without one is all key)."""
        return self.stem.rpartition(SEPARATOR)[2]

    @property
    def file_name(self) -> str:
        return self.stem + SUFFIX


def entry_path(*, dataset: str, backbone: str, key: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache_dir>/<dataset>/<backbone>__<key>.h5``."""
    return paths.cache_dir(cache_dir) / safe_name(dataset) / EntryName.make(backbone, key).file_name


def partial_path(final: Path) -> Path:
    """Where the unfinished version of ``final`` lives while it is written."""
    return final.with_name(final.stem + PARTIAL_SUFFIX)


def is_partial(path: Path) -> bool:
    return path.name.endswith(PARTIAL_SUFFIX)


def shards_dir(final: Path) -> Path:
    """The folder of an entry's shard files: ``<dataset>/.shards/<backbone>__<key>/``."""
    return final.parent / SHARDS_DIR / final.stem


def final_path_of(path: Path) -> Path:
    """The entry's final path, from its final, partial or shard-folder path."""
    folder = path.parent.parent if path.parent.name == SHARDS_DIR else path.parent
    return folder / EntryName.of(path).file_name


def entry_of(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path | None:
    """The final path of the entry whose file (or shard folder) ``path`` is, when it lies
    where the layout puts an entry's files under the cache root ``root``:
    ``<root>/<dataset>/<backbone>__<key>.h5``, its ``.partial.h5``, its shard folder
    ``<root>/<dataset>/.shards/<backbone>__<key>/`` or a ``shard-K-of-N.h5`` in it. None
    anywhere else: a file outside the cache root, or not named as an entry, is not one.

    The folders are compared resolved (a cache root reached through a link is the same
    root); the last part of ``path`` is not followed.
    """
    given = Path(path).expanduser()
    place = given.parent.resolve() / given.name
    top = Path(root).expanduser().resolve()
    if len(place.parents) >= 4 and place.parents[1].name == SHARDS_DIR and SHARD_FILE.match(place.name):
        place = place.parent  # a shard file: the entry is its folder's
    if place.parent.name == SHARDS_DIR:
        dataset, name = place.parent.parent, EntryName(place.name)
    elif place.suffix == SUFFIX:
        dataset, name = place.parent, EntryName.of(place)
    else:
        return None
    named = SEPARATOR in name.stem and bool(name.backbone) and bool(name.key)
    if not named or dataset.parent != top or dataset.name.startswith("."):
        return None
    return dataset / name.file_name


def rows_per_chunk(dim: int, n_rows: int) -> int:
    """Whole-row HDF5 chunks of about 1 MiB, never more rows than the split has."""
    return max(1, min(max(n_rows, 1), CHUNK_BYTES // (4 * max(dim, 1))))


# --------------------------------------------------------------------------- checksums


def split_checksums(group: Any, *, block_rows: int = 8192) -> tuple[str, str]:
    """sha256 of an HDF5 split's features (float32, row-major) and labels (int64), read in blocks."""
    features, labels = group[FEATURES], group[LABELS]
    feat_hash, label_hash = hashlib.sha256(), hashlib.sha256()
    for start in range(0, features.shape[0], block_rows):
        _update(feat_hash, features[start : start + block_rows], "<f4")
        _update(label_hash, labels[start : start + block_rows], "<i8")
    return feat_hash.hexdigest(), label_hash.hexdigest()


def array_checksums(features: np.ndarray, labels: np.ndarray) -> tuple[str, str]:
    """:func:`split_checksums` of a split already in memory (the same digests)."""
    feat_hash, label_hash = hashlib.sha256(), hashlib.sha256()
    _update(feat_hash, features, "<f4")
    _update(label_hash, labels, "<i8")
    return feat_hash.hexdigest(), label_hash.hexdigest()


def _update(digest: Any, array: np.ndarray, dtype: str) -> None:
    """Feed ``array``'s bytes as ``dtype`` (little-endian, row-major) to ``digest`` without a copy when it already is."""
    digest.update(np.ascontiguousarray(array, dtype=dtype))


def content_key(checksums: Mapping[str, tuple[str, str]]) -> str:
    """What the features are: a hash of each split's features and labels sha256 (16 hex
    characters). Two files with the same content key hold the same numbers, whatever
    their attributes claim; run records and PCA plots are keyed by it."""
    return short_hash({split: list(pair) for split, pair in sorted(checksums.items())})


def cache_key(identity: Mapping[str, Any]) -> str:
    """Content address of a cache entry: a hash of everything that changes the numbers.

    Args:
        identity: JSON-serialisable description (dataset fingerprint, model, weights
            identity, data config, precision, ...). ``format_version`` is added here.

    Returns:
        16 hexadecimal characters.
    """
    return short_hash({**identity, FORMAT: FORMAT_VERSION})

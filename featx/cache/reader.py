"""Reading a cache file, and the one check that decides whether an entry is trusted.

A file is trusted for some splits (:func:`open_features`) when it opens, has this format
version, and every split asked for is complete and consistent (labels as long as the
features, and for a stitched entry every shard file it reads is there). Reading a split
(:func:`read_split`) also checks its checksums, recorded when it was written, and that
it holds no NaN/inf and only labels of known classes. :func:`is_trusted` is the check
every stage uses before taking an entry as done. Nothing here imports torch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featx.cache.layout import (
    CLASS_NAMES,
    COMPLETE,
    DEVICE,
    FEATURES,
    FEATURES_SHA256,
    FORMAT,
    FORMAT_VERSION,
    IMAGES_PER_SECOND,
    KEY,
    LABELS,
    LABELS_SHA256,
    N_DONE,
    SECONDS,
    SEPARATOR,
    SHARDS,
    SHARDS_DIR,
    SPLITS,
    SUFFIX,
    EntryName,
    array_checksums,
    is_partial,
    split_checksums,
)
from featx.core import paths
from featx.core.errors import CacheError
from featx.core.paths import safe_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitInfo:
    """What a cache file says about one split."""

    name: str
    n_rows: int
    dim: int
    complete: bool
    n_done: int
    seconds: float
    images_per_second: float
    device: str


@dataclass(frozen=True)
class CacheInfo:
    """What a cache file says about itself (root attributes decoded)."""

    path: Path
    key: str
    attrs: dict[str, Any]
    splits: dict[str, SplitInfo] = field(default_factory=dict)
    size_bytes: int = 0
    partial: bool = False
    shard_files: tuple[Path, ...] = ()

    @property
    def complete(self) -> bool:
        """True when the file is final and every split is complete."""
        return not self.partial and bool(self.splits) and all(s.complete for s in self.splits.values())

    @property
    def class_names(self) -> list[str]:
        return list(self.attrs.get(CLASS_NAMES) or [])

    @property
    def dim(self) -> int:
        return next((s.dim for s in self.splits.values()), 0)

    @property
    def stitched(self) -> bool:
        """True for an entry whose datasets are virtual, over shard files."""
        return bool(self.shard_files)


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _recovery_hint(path: Path, key: str | None = None) -> str:
    target = key or EntryName.of(path).key
    return f"remove it with `featx cache rm {target}` or extract again with --force"


def _checksum_error(path: Path, split: str, key: str) -> CacheError:
    return CacheError(f"{path}: split {split!r} does not match its checksum (damaged after writing); {_recovery_hint(path, key)}")


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise CacheError(f"feature file not found: {path}")
    if path.is_dir() and path.parent.name == SHARDS_DIR:
        raise CacheError(
            f"{path} holds the shard files of an unfinished sharded extraction, not yet a feature file; "
            f"compute the missing shards (the same `featx extract` with --shard K/N or --scheduler ... --shards N) "
            f"and `featx cache stitch {EntryName.of(path).key}`"
        )
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise CacheError(f"cannot open feature file {path} (truncated or damaged: {error}); {_recovery_hint(path)}") from None


def _read_info(handle: h5py.File, path: Path) -> CacheInfo:
    attrs = {name: _decode_attr(value) for name, value in handle.attrs.items()}
    splits: dict[str, SplitInfo] = {}
    for name, group in handle.items():
        if not isinstance(group, h5py.Group) or FEATURES not in group:
            continue
        shape = group[FEATURES].shape
        splits[name] = SplitInfo(
            name=name,
            n_rows=int(shape[0]),
            dim=int(shape[1]) if len(shape) > 1 else 0,
            complete=bool(group.attrs.get(COMPLETE, False)),
            n_done=int(group.attrs.get(N_DONE, shape[0])),
            seconds=float(group.attrs.get(SECONDS, 0.0)),
            images_per_second=float(group.attrs.get(IMAGES_PER_SECOND, 0.0)),
            device=str(_decode_attr(group.attrs.get(DEVICE, ""))),
        )
    shard_files = tuple(path.parent / name for name in attrs.get(SHARDS) or ())
    return CacheInfo(
        path=path,
        key=str(attrs.get(KEY, EntryName.of(path).key)),
        attrs=attrs,
        splits=splits,
        size_bytes=path.stat().st_size + sum(f.stat().st_size for f in shard_files if f.exists()),
        partial=is_partial(path),
        shard_files=shard_files,
    )


def read_info(path: str | os.PathLike[str]) -> CacheInfo:
    """Read a cache file's attributes without trusting or loading its features.

    Raises:
        CacheError: the file is missing or cannot be opened.
    """
    file_path = Path(path)
    with _open(file_path) as handle:
        return _read_info(handle, file_path)


def _check_format(info: CacheInfo) -> None:
    version = info.attrs.get(FORMAT)
    if version is None:
        raise CacheError(f"{info.path} is not a featx feature file (no format_version attribute)")
    if int(version) != FORMAT_VERSION:
        raise CacheError(
            f"{info.path} has feature format version {version}, this featx reads version {FORMAT_VERSION}; "
            f"{_recovery_hint(info.path, info.key)}"
        )


def _check_split(handle: h5py.File, info: CacheInfo, split: str) -> None:
    if split not in info.splits:
        raise CacheError(
            f"{info.path} has no split {split!r} (it has: {', '.join(info.splits) or 'none'}); {_recovery_hint(info.path, info.key)}"
        )
    meta = info.splits[split]
    if not meta.complete or meta.n_done != meta.n_rows:
        raise CacheError(
            f"{info.path}: split {split!r} is incomplete ({meta.n_done} of {meta.n_rows} rows); "
            f"run the same extract again to resume it, or {_recovery_hint(info.path, info.key)}"
        )
    n_labels = handle[split][LABELS].shape
    if n_labels != (meta.n_rows,):
        raise CacheError(
            f"{info.path}: split {split!r} has {meta.n_rows} feature rows but labels of shape {n_labels}; {_recovery_hint(info.path, info.key)}"
        )
    missing = _unreadable_sources(info.path, handle[split])
    if missing:
        raise CacheError(
            f"{info.path}: split {split!r} reads shard files that are missing or unreadable ({', '.join(missing)}); "
            f"run the same sharded extract again to recompute them, or {_recovery_hint(info.path, info.key)}"
        )


def _unreadable_sources(path: Path, group: h5py.Group) -> list[str]:
    """The source files of the split's virtual datasets that do not open (relative names).

    A virtual dataset reads a missing source as its fill value without any error, so a
    stitched entry is checked file by file before it is trusted. Relative source names
    are resolved from the entry's folder, as HDF5 does.
    """
    names = {source.file_name for name in (FEATURES, LABELS) if group[name].is_virtual for source in group[name].virtual_sources()}
    bad = []
    for name in sorted(names):
        try:
            h5py.File(path.parent / name, "r").close()
        except OSError:
            bad.append(name)
    return bad


def open_features(path: str | os.PathLike[str], splits: Sequence[str] = SPLITS) -> CacheInfo:
    """Check that a cache file can be trusted for ``splits`` and return its description.

    Raises:
        CacheError: missing, unopenable, other format version, a split absent,
            incomplete or inconsistent, or splits of different feature widths. The
            message says how to recover.
    """
    file_path = Path(path)
    with _open(file_path) as handle:
        info = _read_info(handle, file_path)
        _check_format(info)
        for split in splits:
            _check_split(handle, info, split)
    widths = {split: info.splits[split].dim for split in splits}
    if len(set(widths.values())) > 1:
        listed = ", ".join(f"{split} {dim}" for split, dim in widths.items())
        raise CacheError(f"{file_path}: splits have different feature widths ({listed}); {_recovery_hint(file_path, info.key)}")
    return info


def is_trusted(path: Path, splits: Sequence[str] = SPLITS, *, then: str = "") -> bool:
    """Whether the entry at ``path`` exists and passes :func:`open_features` for ``splits``.

    The one check that decides whether a cache entry is done (an extraction's cache hit, a
    stitched entry kept, ``cache ls``'s state). A file that exists but fails is logged as a
    warning naming the reason, followed by ``then`` (what the caller does about it) when given.
    """
    if not path.exists():
        return False
    try:
        open_features(path, splits)
    except CacheError as error:
        if then:
            log.warning("%s cannot be trusted (%s); %s", path.name, error, then)
        return False
    return True


def read_split(path: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one trusted split: ``X (n_samples, n_features) float32`` and ``y (n_samples,) int64``.

    Raises:
        CacheError: the split cannot be trusted, does not match the checksums recorded
            when it was written, or holds NaN/inf or labels outside the class list.
    """
    file_path = Path(path)
    with _open(file_path) as handle:
        info = _read_info(handle, file_path)
        _check_format(info)
        _check_split(handle, info, split)
        group = handle[split]
        try:
            features = np.asarray(group[FEATURES][...], dtype=np.float32)
            labels = np.asarray(group[LABELS][...], dtype=np.int64)
        except OSError as error:
            raise CacheError(f"cannot read {split!r} from {file_path} ({error}); {_recovery_hint(file_path, info.key)}") from None
        expected = (group.attrs.get(FEATURES_SHA256), group.attrs.get(LABELS_SHA256))
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).any(axis=1).sum())
        raise CacheError(f"{file_path}: split {split!r} has {bad} rows with NaN or inf features; {_recovery_hint(file_path, info.key)}")
    n_classes = len(info.class_names)
    if len(labels) and (labels.min() < 0 or (n_classes and labels.max() >= n_classes)):
        raise CacheError(f"{file_path}: split {split!r} has labels outside 0..{n_classes - 1}; {_recovery_hint(file_path, info.key)}")
    if expected[0] is not None and tuple(_decode_attr(v) for v in expected) != array_checksums(features, labels):
        raise _checksum_error(file_path, split, info.key)
    return features, labels


def resolve_features(
    path_or_name: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Turn ``--features`` (an .h5 path, or a backbone name in the cache) into a file path.

    A backbone name is looked up under ``<cache_dir>/<dataset>/``; when several complete
    entries exist for it (different sizes or weights), the newest is used and the others
    are named in the log. Without ``dataset`` every data set folder is searched and the
    name must be unambiguous.

    Raises:
        CacheError: no such file, or no complete entry for the name.
    """
    candidate = Path(path_or_name).expanduser()
    if candidate.suffix == ".h5" or candidate.exists():
        if not candidate.exists():
            raise CacheError(f"feature file not found: {candidate}")
        return candidate
    name = safe_name(str(path_or_name))
    root = paths.cache_dir(cache_dir)
    folders = [root / safe_name(dataset)] if dataset else sorted(p for p in root.glob("*") if p.is_dir())
    found = [
        p
        for folder in folders
        for p in folder.glob(f"{name}{SEPARATOR}*{SUFFIX}")
        if not is_partial(p) and EntryName.of(p).backbone == name
    ]
    if not found:
        where = root / safe_name(dataset) if dataset else root
        raise CacheError(
            f"no cached features for {path_or_name!r} in {where}; run `featx extract --backbone {path_or_name}` first or pass an .h5 path"
        )
    if not dataset and len({p.parent for p in found}) > 1:
        sets = ", ".join(sorted({p.parent.name for p in found}))
        raise CacheError(f"features for {path_or_name!r} exist for several data sets ({sets}); pass --dataset")
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    if len(found) > 1:
        log.info(
            "using %s (newest of %d cached entries for %s: %s)",
            found[0].name,
            len(found),
            path_or_name,
            ", ".join(p.name for p in found[1:]),
        )
    return found[0]


def load_features(
    path_or_name: str | os.PathLike[str],
    split: str = "train",
    *,
    dataset: str | None = "cifar10",
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load one split of cached features.

    Args:
        path_or_name: an .h5 path, or a backbone name resolved in the cache for ``dataset``.
        split: "train" or "test".
        dataset: data set folder in the cache (ignored for a path; None searches all).
        cache_dir: cache root (default ``features/`` or ``FEATX_CACHE_DIR``).

    Returns:
        ``(X, y, class_names)``: ``X`` float32 ``(n_samples, n_features)``, ``y`` int64
        ``(n_samples,)``, and the class name of each label index.

    Raises:
        CacheError: not found, untrusted, or damaged.
    """
    path = resolve_features(path_or_name, dataset=dataset, cache_dir=cache_dir)
    info = open_features(path, splits=(split,))
    features, labels = read_split(path, split)
    return features, labels, info.class_names


def verify_file(path: str | os.PathLike[str]) -> list[str]:
    """Re-check a cache file end to end: opens, format, completeness, shapes, checksums.

    Returns:
        A list of problems (empty when the file is sound).
    """
    file_path = Path(path)
    problems: list[str] = []
    try:
        info = open_features(file_path, splits=())
    except CacheError as error:
        return [str(error)]
    with _open(file_path) as handle:
        for split in info.splits:
            try:
                _check_split(handle, info, split)
            except CacheError as error:
                problems.append(str(error))
                continue
            group = handle[split]
            expected = (group.attrs.get(FEATURES_SHA256), group.attrs.get(LABELS_SHA256))
            if expected[0] is None:
                continue  # written by a tool that records no checksum: nothing to compare
            try:
                actual = split_checksums(group)
            except OSError as error:
                problems.append(f"{file_path}: cannot read split {split!r} ({error}); {_recovery_hint(file_path, info.key)}")
                continue
            if tuple(_decode_attr(v) for v in expected) != actual:
                problems.append(str(_checksum_error(file_path, split, info.key)))
    return problems

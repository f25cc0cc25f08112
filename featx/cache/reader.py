"""Reading a cache file, and the one check that decides whether an entry is trusted.

A file is trusted for some splits (:func:`open_features`) when it is a regular file that
opens, every attribute a reader uses has its type and shape (:data:`ROOT_RULES`,
:data:`SPLIT_RULES`: a ``class_names`` that is not a JSON list of names, a
``format_version`` of ``'one'`` are errors naming the attribute and the file), it has
this format version, and every split asked for is complete and consistent (2-D float
features, labels as long as them and within the class names, and for a stitched entry
every shard file it reads is there). Reading a split (:func:`read_split`) also checks
its checksums, recorded when it was written, and that it holds no NaN/inf.
:func:`is_trusted` is the check every stage uses before taking an entry as done.

What the features are is :func:`features_content` (their checksums, whatever the ``key``
attribute claims); whether featx wrote a file for an entry is :func:`entry_kind` (its
attributes), which every delete and replace of a cache file checks. A recovery hint
names ``featx cache rm KEY`` only for a file in an entry's place that featx wrote for that
entry (the check ``cache rm`` makes, so the command it names works). Nothing here imports
torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featx.cache.layout import (
    BACKBONE,
    CLASS_NAMES,
    COMPLETE,
    CREATED,
    CROP_PCT,
    DATASET,
    DEVICE,
    FEATURE_DIM,
    FEATURES,
    FEATURES_SHA256,
    FEATX_VERSION,
    FORMAT,
    FORMAT_VERSION,
    HDF5_SIGNATURE,
    IMAGES_PER_SECOND,
    INPUT_SIZE,
    INTERPOLATION,
    KEY,
    LABELS,
    LABELS_SHA256,
    LIMIT,
    MEAN,
    N_DONE,
    PRECISION,
    SECONDS,
    SEPARATOR,
    SHARD_COUNT,
    SHARD_INDEX,
    SHARD_ROWS,
    SHARDS,
    SHARDS_DIR,
    SPLITS,
    STD,
    SUFFIX,
    WEIGHTS,
    EntryName,
    array_checksums,
    content_key,
    entry_of,
    is_partial,
    split_checksums,
)
from featx.core import paths
from featx.core.console import quote, shorten
from featx.core.errors import CacheError
from featx.core.ownership import FileKind, foreign_reason
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
    checksums: dict[str, tuple[str, str]] = field(default_factory=dict)

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
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_decode_attr(v) for v in value.tolist()] if value.ndim else _decode_attr(value.item())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --------------------------------------------------------------------------- attribute validation
#
# Every attribute a reader uses is checked when the file is opened: its type, its shape,
# and its consistency with the datasets. Each rule takes the decoded value and returns it
# normalised, or raises ValueError saying what was expected. "" is how the writer stores
# None (a value not known), so it counts as absent.


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("text")
    return value


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a whole number")
    return value


def _count(value: Any) -> int:
    if _whole(value) < 0:
        raise ValueError("a whole number of at least 0")
    return int(value)


def _flag(value: Any) -> bool:
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise ValueError("true or false")


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise ValueError("a number of at least 0")
    return float(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError("a finite number")
    return float(value)


def _numbers(value: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ValueError("a list of numbers")
    return [_number(v) for v in value]


def _sizes(value: Any) -> list[int]:
    if not isinstance(value, list) or not value or any(_count(v) < 1 for v in value):
        raise ValueError("a list of whole numbers (channels, height, width)")
    return value


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
        raise ValueError("a JSON list of names")
    return value


def _class_names(value: Any) -> list[str]:
    names = _texts(value)
    if any(not name for name in names):
        raise ValueError("a JSON list of class names, none empty")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"a JSON list of distinct class names ({quote(repeated[0])} appears twice)")
    return names


def _sha256(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError("a sha256 (64 hexadecimal characters)")
    return value


def _shard_rows(value: Any) -> dict[str, list[int]]:
    if not isinstance(value, dict) or any(not isinstance(v, list) or len(v) != 3 for v in value.values()):
        raise ValueError("a JSON mapping of split -> [start, stop, rows]")
    for bounds in value.values():
        for number in bounds:
            _count(number)
    return value


#: root attribute -> its rule (attributes not listed are kept as they are, unchecked)
ROOT_RULES: dict[str, Callable[[Any], Any]] = {
    FORMAT: _whole,
    KEY: _text,
    FEATX_VERSION: _text,
    CREATED: _text,
    CLASS_NAMES: _class_names,
    DATASET: _text,
    BACKBONE: _text,
    WEIGHTS: _text,
    FEATURE_DIM: _count,
    INPUT_SIZE: _sizes,
    INTERPOLATION: _text,
    MEAN: _numbers,
    STD: _numbers,
    CROP_PCT: _number,
    PRECISION: _text,
    SHARDS: _texts,
    SHARD_INDEX: _count,
    SHARD_COUNT: _count,
    SHARD_ROWS: _shard_rows,
}
#: split attribute -> its rule
SPLIT_RULES: dict[str, Callable[[Any], Any]] = {
    COMPLETE: _flag,
    N_DONE: _count,
    SECONDS: _seconds,
    IMAGES_PER_SECOND: _seconds,
    DEVICE: _text,
    FEATURES_SHA256: _sha256,
    LABELS_SHA256: _sha256,
}


def _checked(attrs: Any, rules: Mapping[str, Callable[[Any], Any]], path: Path, where: str = "") -> dict[str, Any]:
    """Decode every attribute of ``attrs`` and check those with a rule.

    Raises:
        CacheError: an attribute has the wrong type or shape; names it and the file.
    """
    decoded: dict[str, Any] = {}
    for name, raw in attrs.items():
        value = _decode_attr(raw)
        if value == "" or value is None:
            continue
        rule = rules.get(name)
        if rule is not None:
            try:
                value = rule(value)
            except ValueError as error:
                raise _attribute_error(path, f"{where}{name}", f"is {quote(value)}, expected {error}") from None
        decoded[name] = value
    return decoded


def _attribute_error(path: Path, name: str, problem: str) -> CacheError:
    return CacheError(f"{path}: attribute {name} {problem}; {_recovery_hint(path)}")


def _recovery_hint(path: Path) -> str:
    """How to get rid of a file that cannot be trusted: ``featx cache rm KEY`` only when it
    is an entry of the cache (by its place, not by what its attributes claim)."""
    root = paths.cache_dir()
    final = entry_of(path, root)
    if final is not None:
        return _removal_hint(final, "")
    elsewhere = Path(path).expanduser().absolute().parent.parent
    final = entry_of(path, elsewhere)
    if final is not None and _FEATX_KEY.match(EntryName.of(final).key):
        return _removal_hint(final, f" --cache-dir {elsewhere}")
    return f"it is not an entry of the feature cache ({root}), so featx leaves it alone: replace it, or give another --features"


_FEATX_KEY = re.compile(r"^[0-9a-f]{16}$")


def _removal_hint(final: Path, option: str) -> str:
    """``featx cache rm KEY`` only when it would remove the file in the entry's place (the
    same ownership check), else what to do instead."""
    key = EntryName.of(final).key
    reason = foreign_reason(final, entry_kind(key))
    if reason is None:
        return f"remove it with `featx cache rm {key}{option}` or extract again with --force"
    return (
        f"{final.name} {reason}, so featx neither removes nor replaces it (`featx cache rm` and --force refuse): "
        "move it away yourself, then extract again"
    )


def _checksum_error(path: Path, split: str) -> CacheError:
    return CacheError(f"{path}: split {split!r} does not match its checksum (damaged after writing); {_recovery_hint(path)}")


def _open(path: Path) -> h5py.File:
    """Open a feature file read-only; a folder, a pipe or a device is refused before any read
    (a pipe would block the reader forever)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CacheError(f"feature file not found: {path}") from None
    except OSError as error:
        raise CacheError(f"cannot open feature file {path} ({error.strerror or error})") from None
    if stat.S_ISDIR(mode):
        if path.parent.name == SHARDS_DIR:
            raise CacheError(
                f"{path} holds the shard files of an unfinished sharded extraction, not yet a feature file; "
                f"compute the missing shards (the same `featx extract` with --shard K/N or --scheduler ... --shards N) "
                f"and `featx cache stitch {EntryName.of(path).key}`"
            )
        raise CacheError(f"{path} is a folder, not a feature file; give the path of an .h5 file or a backbone name")
    if not stat.S_ISREG(mode):
        raise CacheError(f"{path} is not a regular file (a pipe, a socket or a device), not a feature file; give an .h5 file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        what = "truncated or damaged" if _hdf5_signature(path) or path.stat().st_size == 0 else "not an HDF5 file"
        reason = shorten(str(error).replace("Unable to synchronously open file", "").strip(" ()"))
        raise CacheError(f"cannot open feature file {path} ({what}: {reason}); {_recovery_hint(path)}") from None


def _hdf5_signature(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


def _read_info(handle: h5py.File, path: Path) -> CacheInfo:
    attrs = _checked(handle.attrs, ROOT_RULES, path)
    splits: dict[str, SplitInfo] = {}
    checksums: dict[str, tuple[str, str]] = {}
    for name, group in handle.items():
        if not isinstance(group, h5py.Group) or FEATURES not in group:
            continue
        shape = _split_shape(group, path, name)
        meta = _checked(group.attrs, SPLIT_RULES, path, where=f"{name}/")
        n_done = meta.get(N_DONE, shape[0])
        if n_done > shape[0]:
            raise _attribute_error(path, f"{name}/{N_DONE}", f"is {n_done}, more than the split's {shape[0]} rows")
        splits[name] = SplitInfo(
            name=name,
            n_rows=shape[0],
            dim=shape[1],
            complete=meta.get(COMPLETE, False),
            n_done=n_done,
            seconds=meta.get(SECONDS, 0.0),
            images_per_second=meta.get(IMAGES_PER_SECOND, 0.0),
            device=meta.get(DEVICE, ""),
        )
        if FEATURES_SHA256 in meta and LABELS_SHA256 in meta:
            checksums[name] = (meta[FEATURES_SHA256], meta[LABELS_SHA256])
    dim, widths = attrs.get(FEATURE_DIM), {split.dim for split in splits.values() if split.n_rows}
    if dim is not None and len(widths) == 1 and dim not in widths:  # splits of different widths: open_features says so
        raise _attribute_error(path, FEATURE_DIM, f"is {dim}, but the features are {widths.pop()} columns wide")
    shard_files = tuple(path.parent / name for name in attrs.get(SHARDS) or ())
    return CacheInfo(
        path=path,
        key=str(attrs.get(KEY, EntryName.of(path).key)),
        attrs=attrs,
        splits=splits,
        size_bytes=path.stat().st_size + sum(f.stat().st_size for f in shard_files if f.is_file()),
        partial=is_partial(path),
        shard_files=shard_files,
        checksums=checksums,
    )


def _split_shape(group: h5py.Group, path: Path, name: str) -> tuple[int, int]:
    """``(rows, columns)`` of a split, once its features are a 2-D float dataset and its
    labels a 1-D integer one."""
    features, labels = group[FEATURES], group.get(LABELS)
    if not isinstance(features, h5py.Dataset) or features.ndim != 2 or features.dtype.kind != "f":
        shape = getattr(features, "shape", "a group")
        raise CacheError(
            f"{path}: {name}/{FEATURES} is {shape} of {getattr(features, 'dtype', 'nothing')}, expected a 2-D float dataset "
            f"(rows x features); {_recovery_hint(path)}"
        )
    if not isinstance(labels, h5py.Dataset) or labels.ndim != 1 or labels.dtype.kind not in "iu":
        shape = getattr(labels, "shape", "missing")
        raise CacheError(
            f"{path}: {name}/{LABELS} is {shape} of {getattr(labels, 'dtype', 'nothing')}, expected a 1-D integer dataset "
            f"(one class index per row); {_recovery_hint(path)}"
        )
    return int(features.shape[0]), int(features.shape[1])


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
        raise CacheError(f"{info.path} is not a featx feature file (no format_version attribute); {_recovery_hint(info.path)}")
    if version != FORMAT_VERSION:
        raise CacheError(
            f"{info.path} has feature format version {version}, this featx reads version {FORMAT_VERSION}; {_recovery_hint(info.path)}"
        )


def _check_split(handle: h5py.File, info: CacheInfo, split: str) -> None:
    if split not in info.splits:
        raise CacheError(f"{info.path} has no split {split!r} (it has: {', '.join(info.splits) or 'none'}); {_recovery_hint(info.path)}")
    meta = info.splits[split]
    if not meta.complete or meta.n_done != meta.n_rows:
        raise CacheError(
            f"{info.path}: split {split!r} is incomplete ({meta.n_done} of {meta.n_rows} rows); "
            f"run the same extract again to resume it, or {_recovery_hint(info.path)}"
        )
    n_labels = handle[split][LABELS].shape
    if n_labels != (meta.n_rows,):
        raise CacheError(
            f"{info.path}: split {split!r} has {meta.n_rows} feature rows but labels of shape {n_labels}; {_recovery_hint(info.path)}"
        )
    missing = _unreadable_sources(info.path, handle[split])
    if missing:
        raise CacheError(
            f"{info.path}: split {split!r} reads shard files that are missing or unreadable ({', '.join(missing)}); "
            f"run the same sharded extract again to recompute them, or {_recovery_hint(info.path)}"
        )
    if meta.n_rows:
        try:
            labels = handle[split][LABELS][...]
        except OSError as error:
            raise CacheError(f"cannot read {split!r} from {info.path} ({shorten(str(error))}); {_recovery_hint(info.path)}") from None
        _check_labels(info, split, labels)


def _check_labels(info: CacheInfo, split: str, labels: np.ndarray) -> None:
    """Labels are class indices: none negative, none beyond the class names (when the file has them)."""
    if not len(labels):
        return
    n_classes = len(info.class_names)
    if labels.min() < 0:
        raise CacheError(f"{info.path}: split {split!r} has negative labels; {_recovery_hint(info.path)}")
    if n_classes and labels.max() >= n_classes:
        raise CacheError(
            f"{info.path}: split {split!r} has labels up to {labels.max()}, but its attribute {CLASS_NAMES} names "
            f"{n_classes} class(es) (labels 0..{n_classes - 1}); {_recovery_hint(info.path)}"
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
        source = path.parent / name
        try:
            if not source.is_file():  # missing, or a folder or pipe HDF5 would fail on (or block on)
                raise OSError(name)
            h5py.File(source, "r").close()
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
        raise CacheError(f"{file_path}: splits have different feature widths ({listed}); {_recovery_hint(file_path)}")
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
            raise CacheError(f"cannot read {split!r} from {file_path} ({error}); {_recovery_hint(file_path)}") from None
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).any(axis=1).sum())
        raise CacheError(f"{file_path}: split {split!r} has {bad} rows with NaN or inf features; {_recovery_hint(file_path)}")
    _check_labels(info, split, labels)
    expected = info.checksums.get(split)
    if expected is not None and expected != array_checksums(features, labels):
        raise _checksum_error(file_path, split)
    return features, labels


def resolve_features(
    path_or_name: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Turn ``--features`` (an .h5 path, or a backbone name in the cache) into a file path.

    A backbone name is looked up under ``<cache_dir>/<dataset>/`` among the complete
    entries for it, by one rule (:func:`choose_entry`): an entry of the full data set (no
    ``limit``) before a subset, a larger subset before a smaller one. The choice is named
    in the log with its reason when there was one to make; when the rule leaves more than
    one entry (other weights, another input size), nothing is guessed. Without ``dataset``
    every data set folder is searched and the name must be unambiguous.

    Raises:
        CacheError: no such file; no complete entry for the name under ``dataset`` (naming
            the data sets that have one); or several entries the rule cannot tell apart
            (listing each with the ``--features`` path that selects it).
    """
    candidate = Path(path_or_name).expanduser()
    if candidate.suffix == ".h5" or candidate.exists():
        if not candidate.exists():
            raise CacheError(f"feature file not found: {candidate}")
        return candidate
    name = safe_name(str(path_or_name))
    root = paths.cache_dir(cache_dir)
    folders = [root / safe_name(dataset)] if dataset else sorted(p for p in root.glob("*") if p.is_dir())
    found = _complete_entries(name, folders)
    if not found:
        where = root / safe_name(dataset) if dataset else root
        elsewhere = sorted({p.parent.name for p in _complete_entries(name, sorted(p for p in root.glob("*") if p.is_dir()))})
        if dataset and elsewhere:
            raise CacheError(
                f"no cached features for {path_or_name!r} under data set {dataset!r} ({where}); they exist under "
                + ", ".join(elsewhere)
                + f": pass --dataset {elsewhere[0]}"
                + (" (or another of those)" if len(elsewhere) > 1 else "")
            )
        raise CacheError(
            f"no cached features for {path_or_name!r} in {where}; run `featx extract --backbone {path_or_name}` first or pass an .h5 path"
        )
    if not dataset and len({p.parent for p in found}) > 1:
        sets = ", ".join(sorted({p.parent.name for p in found}))
        raise CacheError(f"features for {path_or_name!r} exist for several data sets ({sets}); pass --dataset")
    return choose_entry(str(path_or_name), found)


def _complete_entries(name: str, folders: Sequence[Path]) -> list[Path]:
    return [
        p
        for folder in folders
        for p in sorted(folder.glob(f"{name}{SEPARATOR}*{SUFFIX}"))
        if not is_partial(p) and EntryName.of(p).backbone == name and p.is_file()
    ]


def entry_limit(info: CacheInfo) -> int | None:
    """The ``limit`` an entry was extracted with (images per split), or None for the full data set."""
    value = info.attrs.get(LIMIT)
    return int(value) if isinstance(value, (int, float, np.integer)) and not isinstance(value, bool) else None


def describe_entry(info: CacheInfo) -> str:
    """One short phrase telling an entry apart from others of its backbone:
    ``weights pretrained, 224 px, full data set, 50000 train rows``."""
    size = info.attrs.get(INPUT_SIZE)
    limit = entry_limit(info)
    train = info.splits.get("train")
    parts = [
        f"weights {shorten(str(info.attrs.get(WEIGHTS, '?')), 40)}",
        f"{size[-1]} px" if isinstance(size, list) and size else "",
        "full data set" if limit is None else f"--limit {limit}",
        f"{train.n_rows} train rows" if train else "",
    ]
    return ", ".join(part for part in parts if part)


def choose_entry(name: str, found: Sequence[Path]) -> Path:
    """The entry that ``--features NAME`` means among the complete entries ``found`` for it.

    The rule: an entry of the full data set (no ``limit``) before any subset, then the
    larger subset. The one left is used, and the log says which and why when there was a
    choice; when several are left (they differ in weights, input size, ...), none is
    guessed.

    Raises:
        CacheError: several entries the rule cannot tell apart, each listed with the
            ``--features`` path that selects it.
    """
    if len(found) == 1:
        return found[0]
    infos = []
    for path in found:
        try:
            infos.append(read_info(path))
        except CacheError:
            continue  # a damaged file is never chosen; `featx cache ls` shows it
    if not infos:
        return found[0]  # let the reader's own error name the damage

    def coverage(info: CacheInfo) -> float:
        limit = entry_limit(info)
        return float("inf") if limit is None else float(limit)

    best = max(coverage(info) for info in infos)
    chosen = [info for info in infos if coverage(info) == best]
    if len(chosen) > 1:
        listed = "; ".join(f"--features {info.path} ({describe_entry(info)})" for info in chosen)
        raise CacheError(f"{len(chosen)} cached entries for {name!r} are equally complete and differ otherwise; choose one: {listed}")
    pick, others = chosen[0], [info for info in infos if info is not chosen[0]]
    why = "the full data set" if entry_limit(pick) is None else f"the largest subset (--limit {entry_limit(pick)})"
    log.log(
        logging.INFO if entry_limit(pick) is None else logging.WARNING,  # fitting on a subset deserves a warning
        "using %s for %s: %s; also cached: %s",
        pick.path.name,
        name,
        why,
        ", ".join(f"{info.path.name} ({describe_entry(info)})" for info in others),
    )
    return pick.path


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
            expected = info.checksums.get(split)
            if expected is None:
                continue  # written by a tool that records no checksum: nothing to compare
            try:
                actual = split_checksums(handle[split])
            except OSError as error:
                problems.append(f"{file_path}: cannot read split {split!r} ({shorten(str(error))}); {_recovery_hint(file_path)}")
                continue
            if expected != actual:
                problems.append(str(_checksum_error(file_path, split)))
    return problems


def features_content(info: CacheInfo, splits: Sequence[str] = SPLITS) -> str:
    """What the features of ``splits`` are (:func:`featx.cache.layout.content_key`), not
    what the file's ``key`` attribute claims: two files share it only when they hold the
    same numbers. Run records and PCA plots are keyed by it.

    The checksums are those recorded when the file was written (every read checks them);
    for a file written without them (another tool) they are computed from its data.

    Raises:
        CacheError: the file cannot be read.
    """
    checksums = {split: info.checksums[split] for split in splits if split in info.checksums}
    missing = [split for split in splits if split not in checksums]
    if missing:
        with _open(info.path) as handle:
            try:
                checksums.update({split: split_checksums(handle[split]) for split in missing})
            except (OSError, KeyError) as error:
                raise CacheError(f"cannot read {info.path} ({shorten(str(error))}); {_recovery_hint(info.path)}") from None
    return content_key(checksums)


def written_by_featx(path: Path, *, key: str | None, shard: tuple[int, int] | None = None) -> bool:
    """Whether the file at ``path`` is featx's own cache file of entry ``key`` (of shard
    ``(index, count)`` of it, for a shard file), by its attributes: ``featx_version``,
    ``format_version`` and this ``key`` (any key when ``key`` is None; and shard index
    and count).

    A file too damaged to open is featx's when it still starts with the HDF5 signature, or
    is empty (an entry killed as it was created): its attributes cannot be read, and the
    caller has checked that it lies where featx keeps that entry. A file that is not HDF5
    is never featx's.
    """
    try:
        handle = h5py.File(path, "r")
    except OSError:
        return path.stat().st_size == 0 or _hdf5_signature(path)
    with handle:
        attrs = {
            name: _decode_attr(handle.attrs[name])
            for name in (FEATX_VERSION, FORMAT, KEY, SHARD_INDEX, SHARD_COUNT)
            if name in handle.attrs
        }
    if not isinstance(attrs.get(FEATX_VERSION), str) or FORMAT not in attrs or (key is not None and attrs.get(KEY) != key):
        return False
    return shard is None or (attrs.get(SHARD_INDEX), attrs.get(SHARD_COUNT)) == shard


def entry_kind(key: str | None, shard: tuple[int, int] | None = None) -> FileKind:
    """Cache files of entry ``key`` (of one of its shards; of any entry when None) as
    featx writes them, for the ownership check before one is deleted or replaced
    (:mod:`featx.core.ownership`)."""
    what = "feature cache file" if shard is None else "shard file"
    return FileKind(f"{what}{f' of entry {key}' if key else ''}", lambda path: written_by_featx(path, key=key, shard=shard))

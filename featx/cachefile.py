"""The feature cache file: the contract between stage one (extract) and stage two (fit).

Layout (HDF5, see the README)::

    /<split>/features   float32 [N, D], chunked by whole rows (about 1 MiB a chunk)
    /<split>/labels     int64   [N]
    root attrs          featx_version, format_version, key, dataset, class_names (JSON),
                        backbone, timm_version, torch_version, weights, input_size,
                        interpolation, mean, std, precision, created (ISO 8601), ...
    split attrs         complete (bool), n_done, seconds, images_per_second, device,
                        features_sha256, labels_sha256

A sharded extraction writes one such file per shard, holding a contiguous block of rows
of every split, under ``<dataset>/.shards/<backbone>__<key>/`` (:func:`shards_dir`), and
then a *stitched* entry at the usual place whose datasets are HDF5 virtual datasets over
the shard files (relative paths, listed in the root attribute ``shards``): no copy, and
readers see the usual layout. Such an entry is trusted only while every shard file it
references is there (a virtual dataset would read a missing one as its fill value).

Writing is crash-safe: rows go to ``<final>.partial.h5``, flushed after every batch with
``n_done`` recording the finished prefix, so a killed writer is resumed; only a file whose
every split is ``complete`` is moved into place with ``os.replace``. Readers trust a file
only when it opens, has this format version, and every split asked for is complete and
consistent. This module never imports torch.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featx import paths
from featx._version import __version__
from featx.atomic import fsync_dir, write_error, writing
from featx.errors import CacheBusyError, CacheError
from featx.faults import fault_point

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".partial.h5"
LOCK_DIR = ".locks"
CHUNK_BYTES = 1 << 20
SPLITS = ("train", "test")
SHARDS_DIR = ".shards"
#: room kept for HDF5's own structures and attributes when checking the disk has space
ROOM_MARGIN = 1 << 20


# --------------------------------------------------------------------------- keys and names


def cache_key(identity: Mapping[str, Any]) -> str:
    """Content address of a cache entry: a hash of everything that changes the numbers.

    Args:
        identity: JSON-serialisable description (dataset fingerprint, model, weights
            identity, data config, precision, ...). ``format_version`` is added here.

    Returns:
        16 hexadecimal characters.
    """
    payload = {**identity, "format_version": FORMAT_VERSION}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


def safe_name(name: str) -> str:
    """A file-name-safe form of a backbone or data set name (``hf-hub:a/b`` -> ``hf-hub-a-b``)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
    return cleaned.strip("-.") or "unnamed"


def entry_path(*, dataset: str, backbone: str, key: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache_dir>/<dataset>/<backbone>__<key>.h5``."""
    return paths.cache_dir(cache_dir) / safe_name(dataset) / f"{safe_name(backbone)}__{key}.h5"


def partial_path(final: Path) -> Path:
    """Where the unfinished version of ``final`` lives while it is written."""
    return final.with_name(final.stem + PARTIAL_SUFFIX)


def lock_path(final: Path) -> Path:
    """The lock file guarding the writing of ``final``."""
    return final.parent / LOCK_DIR / (final.name + ".lock")


def shards_dir(final: Path) -> Path:
    """The folder of an entry's shard files: ``<dataset>/.shards/<backbone>__<key>/``."""
    return final.parent / SHARDS_DIR / final.stem


def final_path_of(path: Path) -> Path:
    """The entry's final path, from its final, partial or shard-folder path."""
    if path.parent.name == SHARDS_DIR:
        return path.parent.parent / (path.name + ".h5")
    return path.with_name(path.name.replace(PARTIAL_SUFFIX, ".h5"))


@contextlib.contextmanager
def entry_lock(final: Path, *, wait: bool = True, on_wait: Any = None) -> Iterator[None]:
    """Hold the exclusive lock of one cache entry (across processes).

    Args:
        final: the entry's final path.
        wait: block until the lock is free; otherwise raise at once.
        on_wait: called once (no arguments) before blocking, e.g. to tell the user.

    Raises:
        CacheBusyError: ``wait`` is false and another process holds the lock.
        WriteError: the lock file cannot be created (the folder is not writable).
    """
    from filelock import FileLock, Timeout

    path = lock_path(final)
    lock = FileLock(str(path))
    with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:  # a TimeoutError, so an OSError: caught first
        if not wait:
            raise CacheBusyError(f"another featx process is writing {final.name}; try again when it has finished") from None
        if on_wait is not None:
            on_wait()
        lock.acquire()
    except OSError as error:
        raise write_error(path, error) from error
    try:
        yield
    finally:
        lock.release()


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class SplitPlan:
    """The shape of one split to be written: ``n_rows`` x ``dim`` float32 features."""

    n_rows: int
    dim: int


def rows_per_chunk(dim: int, n_rows: int) -> int:
    """Whole-row HDF5 chunks of about 1 MiB, never more rows than the split has."""
    return max(1, min(max(n_rows, 1), CHUNK_BYTES // (4 * max(dim, 1))))


def _attr_value(value: Any) -> Any:
    """Store lists/tuples of numbers as arrays, dicts as JSON, None as empty string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)  # a str subclass (torch's TorchVersion) would become a numpy unicode array
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=_json_default)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value):
            return np.asarray(value)
        return json.dumps(list(value), default=_json_default)
    return value


class CacheWriter:
    """Write one cache file crash-safely, resuming an earlier partial file where possible.

    Use as a context manager::

        with CacheWriter(final, root_attrs=attrs, splits={"train": SplitPlan(n, d)}) as w:
            start = w.n_done("train")
            ...
            w.write_rows("train", start, features, labels, seconds=dt)
            w.finish_split("train", device="cuda:0")
            w.commit()

    Leaving the block without ``commit`` (an exception, Ctrl-C) keeps the flushed partial
    file for the next run to resume. The caller is expected to hold :func:`entry_lock`.
    """

    def __init__(self, final_path: str | os.PathLike[str], *, root_attrs: Mapping[str, Any], splits: Mapping[str, SplitPlan]) -> None:
        self.final_path = Path(final_path)
        self.partial = partial_path(self.final_path)
        self.root_attrs = dict(root_attrs)
        self.splits = dict(splits)
        if "key" not in self.root_attrs:
            raise ValueError("root_attrs must contain the cache key")
        self._file: h5py.File | None = None

    # context management -------------------------------------------------------------
    def __enter__(self) -> CacheWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the partial file, resuming it when it matches, else starting afresh.

        Raises:
            WriteError: the folder is not writable or the disk is full.
        """
        with writing(self.partial):
            self.final_path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._try_resume()
            self._check_room(handle)
            if handle is None:
                self.partial.unlink(missing_ok=True)
                handle = h5py.File(self.partial, "w")
                try:
                    self._initialise(handle)
                except BaseException:
                    handle.close()
                    raise
        self._file = handle

    def _check_room(self, resumed: h5py.File | None) -> None:
        """Refuse to start when the rows still to write cannot fit on the disk (or under
        the process's file size limit): HDF5 does not survive a write that fails halfway
        (it may even crash the process), so a full disk is best found before writing."""
        import resource

        row_bytes = {name: plan.dim * 4 + 8 for name, plan in self.splits.items()}
        total = sum(plan.n_rows * row_bytes[name] for name, plan in self.splits.items()) + ROOM_MARGIN
        done = sum(int(resumed[name].attrs.get("n_done", 0)) * row_bytes[name] for name in self.splits) if resumed is not None else 0
        free = shutil.disk_usage(self.final_path.parent).free
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        problem = None
        if total - done > free:
            problem = OSError(errno.ENOSPC, f"it needs about {_megabytes(total - done)} more and {_megabytes(free)} are free")
        elif limit != resource.RLIM_INFINITY and total > limit:
            problem = OSError(errno.EFBIG, f"it needs about {_megabytes(total)}, over this process's file size limit of {_megabytes(limit)}")
        if problem is not None:
            if resumed is not None:
                resumed.close()
            raise problem

    def close(self) -> None:
        """Flush and close; the partial file stays for a later resume."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.flush()
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None

    # resume -------------------------------------------------------------------------
    def _try_resume(self) -> h5py.File | None:
        if not self.partial.exists():
            return None
        try:
            handle = h5py.File(self.partial, "r+")
        except OSError as error:
            log.warning("discarding unreadable partial file %s (%s)", self.partial.name, error)
            return None
        try:
            if self._matches(handle):
                done = {name: int(handle[name].attrs.get("n_done", 0)) for name in self.splits}
                if any(done.values()):
                    log.info("resuming %s: %s rows already written", self.final_path.name, ", ".join(f"{k} {v}" for k, v in done.items()))
                return handle
            log.info("discarding partial file %s written for another configuration", self.partial.name)
        except Exception as error:  # a damaged partial is never trusted
            log.warning("discarding damaged partial file %s (%s)", self.partial.name, error)
        handle.close()
        return None

    def _matches(self, handle: h5py.File) -> bool:
        attrs = handle.attrs
        if attrs.get("key") != self.root_attrs["key"] or int(attrs.get("format_version", -1)) != FORMAT_VERSION:
            return False
        for name, plan in self.splits.items():
            if name not in handle:
                return False
            group = handle[name]
            if group["features"].shape != (plan.n_rows, plan.dim) or group["labels"].shape != (plan.n_rows,):
                return False
            if not 0 <= int(group.attrs.get("n_done", -1)) <= plan.n_rows:
                return False
        return True

    def _initialise(self, handle: h5py.File) -> None:
        for name, value in self.root_attrs.items():
            handle.attrs[name] = _attr_value(value)
        handle.attrs["format_version"] = FORMAT_VERSION
        handle.attrs["featx_version"] = __version__
        handle.attrs.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        for name, plan in self.splits.items():
            group = handle.create_group(name)
            group.create_dataset(
                "features",
                shape=(plan.n_rows, plan.dim),
                dtype="float32",
                chunks=(rows_per_chunk(plan.dim, plan.n_rows), plan.dim) if plan.n_rows and plan.dim else None,
            )
            group.create_dataset("labels", shape=(plan.n_rows,), dtype="int64")
            group.attrs["complete"] = False
            group.attrs["n_done"] = 0
            group.attrs["seconds"] = 0.0
        handle.flush()

    # writing ------------------------------------------------------------------------
    @property
    def file(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError("CacheWriter is not open")
        return self._file

    def n_done(self, split: str) -> int:
        """Rows of ``split`` already written (a prefix: rows ``[0, n_done)``)."""
        return int(self.file[split].attrs["n_done"])

    def is_complete(self, split: str) -> bool:
        """Whether ``split`` was finished (possibly by an earlier, resumed run)."""
        return bool(self.file[split].attrs["complete"])

    def write_rows(self, split: str, start: int, features: np.ndarray, labels: np.ndarray, *, seconds: float = 0.0) -> None:
        """Write rows ``[start, start + len(features))`` of ``split`` and make them durable.

        Args:
            split: split name.
            start: first row; must equal :meth:`n_done` (rows are written as a prefix).
            features: ``(n_rows, dim)`` array, stored as float32.
            labels: ``(n_rows,)`` integer class indices.
            seconds: compute time spent on these rows, accumulated for the throughput attr.

        Raises:
            WriteError: the disk is full (the rows vouched for by ``n_done`` stay valid).
        """
        group = self.file[split]
        done = int(group.attrs["n_done"])
        if start != done:
            raise ValueError(f"rows must be written in order: {split} has {done} rows, got start={start}")
        count = len(features)
        if count != len(labels):
            raise ValueError("features and labels differ in length")
        if count == 0:
            return
        with writing(self.partial):
            group["features"][start : start + count] = np.asarray(features, dtype=np.float32)
            group["labels"][start : start + count] = np.asarray(labels, dtype=np.int64)
            self.file.flush()  # rows first, then the counter that vouches for them
            fault_point("cache.rows_flushed")
            group.attrs["n_done"] = start + count
            group.attrs["seconds"] = float(group.attrs["seconds"]) + float(seconds)
            self.file.flush()
            fault_point("cache.rows_written")

    def finish_split(self, split: str, *, device: str) -> None:
        """Mark ``split`` complete once every row is written; record checksums and throughput."""
        group = self.file[split]
        n_rows = group["features"].shape[0]
        if int(group.attrs["n_done"]) != n_rows:
            raise ValueError(f"{split}: {int(group.attrs['n_done'])} of {n_rows} rows written")
        seconds = float(group.attrs["seconds"])
        group.attrs["device"] = device
        group.attrs["images_per_second"] = n_rows / seconds if seconds > 0 else 0.0
        features_sha, labels_sha = split_checksums(group)
        with writing(self.partial):
            group.attrs["features_sha256"] = features_sha
            group.attrs["labels_sha256"] = labels_sha
            group.attrs["complete"] = True
            self.file.flush()
            fault_point("cache.split_complete")

    def set_attrs(self, **attrs: Any) -> None:
        """Add or update root attributes (e.g. the feature dimension, once known)."""
        for name, value in attrs.items():
            self.file.attrs[name] = _attr_value(value)

    def commit(self) -> Path:
        """Close the finished file and move it into place atomically; return the final path.

        Raises:
            ValueError: a split is not complete.
            WriteError: the disk is full.
        """
        unfinished = [name for name in self.splits if not self.is_complete(name)]
        if unfinished:
            raise ValueError(f"cannot commit: splits not complete: {', '.join(unfinished)}")
        with writing(self.partial):
            self.file.attrs["complete"] = True
            self.file.flush()
        self.close()
        with writing(self.final_path):
            fault_point("cache.before_rename")
            os.replace(self.partial, self.final_path)
        fault_point("cache.after_rename")
        fsync_dir(self.final_path.parent)
        return self.final_path


def _megabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def split_checksums(group: h5py.Group, *, block_rows: int = 8192) -> tuple[str, str]:
    """sha256 of a split's features (float32, row-major) and labels (int64), read in blocks."""
    features, labels = group["features"], group["labels"]
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


def write_features(
    path: str | os.PathLike[str],
    arrays: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    class_names: Sequence[str],
    attrs: Mapping[str, Any] | None = None,
    device: str = "cpu",
) -> Path:
    """Write a complete cache file from in-memory arrays (for tests, tools and stitching).

    Args:
        path: final path of the file.
        arrays: split name -> ``(features (N, D), labels (N,))``.
        class_names: names of the label indices.
        attrs: further root attributes; ``key`` defaults to a hash of the path name.

    Returns:
        The final path.
    """
    root = {"key": Path(path).stem.rsplit("__", 1)[-1], "dataset": "custom", "backbone": "custom", **(attrs or {})}
    root["class_names"] = json.dumps(list(class_names))
    first = next(iter(arrays.values()))[0]
    root.setdefault("feature_dim", int(first.shape[1]))
    plans = {name: SplitPlan(len(x), x.shape[1]) for name, (x, _) in arrays.items()}
    with CacheWriter(path, root_attrs=root, splits=plans) as writer:
        for name, (x, y) in arrays.items():
            if not writer.is_complete(name):
                writer.write_rows(name, 0, x, y)
                writer.finish_split(name, device=device)
        return writer.commit()


# --------------------------------------------------------------------------- reading


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
        return list(self.attrs.get("class_names") or [])

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
    target = key or path.stem.rsplit("__", 1)[-1]
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
            f"and `featx cache stitch {path.name.rsplit('__', 1)[-1]}`"
        )
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise CacheError(f"cannot open feature file {path} (truncated or damaged: {error}); {_recovery_hint(path)}") from None


def _read_info(handle: h5py.File, path: Path) -> CacheInfo:
    attrs = {name: _decode_attr(value) for name, value in handle.attrs.items()}
    splits: dict[str, SplitInfo] = {}
    for name, group in handle.items():
        if not isinstance(group, h5py.Group) or "features" not in group:
            continue
        shape = group["features"].shape
        splits[name] = SplitInfo(
            name=name,
            n_rows=int(shape[0]),
            dim=int(shape[1]) if len(shape) > 1 else 0,
            complete=bool(group.attrs.get("complete", False)),
            n_done=int(group.attrs.get("n_done", shape[0])),
            seconds=float(group.attrs.get("seconds", 0.0)),
            images_per_second=float(group.attrs.get("images_per_second", 0.0)),
            device=str(_decode_attr(group.attrs.get("device", ""))),
        )
    shard_files = tuple(path.parent / name for name in attrs.get("shards") or ())
    return CacheInfo(
        path=path,
        key=str(attrs.get("key", path.stem.rsplit("__", 1)[-1])),
        attrs=attrs,
        splits=splits,
        size_bytes=path.stat().st_size + sum(f.stat().st_size for f in shard_files if f.exists()),
        partial=path.name.endswith(PARTIAL_SUFFIX),
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
    version = info.attrs.get("format_version")
    if version is None:
        raise CacheError(f"{info.path} is not a featx feature file (no format_version attribute)")
    if int(version) != FORMAT_VERSION:
        raise CacheError(
            f"{info.path} has feature format version {version}, this featx reads version {FORMAT_VERSION}; "
            f"{_recovery_hint(info.path, info.key)}"
        )


def _check_split(handle: h5py.File, info: CacheInfo, split: str) -> None:
    if split not in info.splits:
        raise CacheError(f"{info.path} has no split {split!r} (it has: {', '.join(info.splits) or 'none'}); {_recovery_hint(info.path, info.key)}")
    meta = info.splits[split]
    if not meta.complete or meta.n_done != meta.n_rows:
        raise CacheError(
            f"{info.path}: split {split!r} is incomplete ({meta.n_done} of {meta.n_rows} rows); "
            f"run the same extract again to resume it, or {_recovery_hint(info.path, info.key)}"
        )
    n_labels = handle[split]["labels"].shape
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
    names = {source.file_name for name in ("features", "labels") if group[name].is_virtual for source in group[name].virtual_sources()}
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
            features = np.asarray(group["features"][...], dtype=np.float32)
            labels = np.asarray(group["labels"][...], dtype=np.int64)
        except OSError as error:
            raise CacheError(f"cannot read {split!r} from {file_path} ({error}); {_recovery_hint(file_path, info.key)}") from None
        expected = (group.attrs.get("features_sha256"), group.attrs.get("labels_sha256"))
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
    found = [p for folder in folders for p in folder.glob(f"{name}__*.h5") if not p.name.endswith(PARTIAL_SUFFIX)]
    if not found:
        where = root / safe_name(dataset) if dataset else root
        raise CacheError(f"no cached features for {path_or_name!r} in {where}; run `featx extract --backbone {path_or_name}` first or pass an .h5 path")
    if not dataset and len({p.parent for p in found}) > 1:
        sets = ", ".join(sorted({p.parent.name for p in found}))
        raise CacheError(f"features for {path_or_name!r} exist for several data sets ({sets}); pass --dataset")
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    if len(found) > 1:
        log.info("using %s (newest of %d cached entries for %s: %s)", found[0].name, len(found), path_or_name, ", ".join(p.name for p in found[1:]))
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


# --------------------------------------------------------------------------- managing the cache


def list_entries(cache_dir: str | os.PathLike[str] | None = None) -> list[CacheInfo]:
    """Every cache file (final and partial) under the cache root, sorted by data set and name.

    Files that cannot be opened are listed with empty attributes so that ``cache ls``
    shows them (and ``cache rm`` can remove them).
    """
    root = paths.cache_dir(cache_dir)
    entries: list[CacheInfo] = []
    for path in sorted(root.glob("*/*.h5")):
        try:
            entries.append(read_info(path))
        except CacheError:
            entries.append(CacheInfo(path=path, key=path.stem.rsplit("__", 1)[-1].replace(".partial", ""), attrs={"damaged": True}, size_bytes=path.stat().st_size, partial=path.name.endswith(PARTIAL_SUFFIX)))
    return entries


def find_entries(key: str, cache_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Cache files (final and partial) whose key starts with ``key``, or whose path is ``key``.

    The shard folder of a sharded extraction that has no final file yet is listed too.
    """
    as_path = Path(key)
    if as_path.suffix == ".h5" and as_path.exists():
        return [as_path]
    root = paths.cache_dir(cache_dir)
    wanted = key.lower()
    matches = []
    for path in sorted(root.glob("*/*.h5")):
        stem = path.name[: -len(PARTIAL_SUFFIX)] if path.name.endswith(PARTIAL_SUFFIX) else path.stem
        entry_key = stem.rsplit("__", 1)[-1]
        if entry_key.startswith(wanted) or stem == key:
            matches.append(path)
    for folder in sorted(root.glob(f"*/{SHARDS_DIR}/*__*")):
        if folder.is_dir() and not final_path_of(folder).exists() and (folder.name.rsplit("__", 1)[-1].startswith(wanted) or folder.name == key):
            matches.append(folder)  # an unfinished sharded extraction
    return matches


def find_entry(key: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The one cache file matching ``key`` (a key, a unique key prefix, or a path): the
    final file, else the partial one, else the shard folder of an unfinished sharded
    extraction.

    Raises:
        CacheError: nothing or more than one entry matches.
    """
    matches = find_entries(key, cache_dir)
    keys = {final_path_of(p).name for p in matches}
    if not matches:
        raise CacheError(f"no cache entry matches {key!r}; see `featx cache ls`")
    if len(keys) > 1:
        raise CacheError(f"{key!r} matches several entries ({', '.join(sorted(keys))}); give more of the key")
    final = [p for p in matches if p.suffix == ".h5" and not p.name.endswith(PARTIAL_SUFFIX)]
    return final[0] if final else matches[0]


def remove_entry(key: str, cache_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Delete the entry matching ``key``: its final file, partial file, shard files and lock file.

    Raises:
        CacheError: nothing or more than one entry matches.
        CacheBusyError: another process is writing it.
    """
    final = final_path_of(find_entry(key, cache_dir))
    removed: list[Path] = []
    with entry_lock(final, wait=False):
        for path in (final, partial_path(final)):
            if path.exists():
                path.unlink()
                removed.append(path)
        removed.extend(remove_shards(final))
    lock_path(final).unlink(missing_ok=True)
    return removed


def remove_shards(final: Path) -> list[Path]:
    """Delete the shard folder of an entry (every shard file, partial or final, of any
    shard count) and return the shard files removed. The caller holds the entry's lock."""
    folder = shards_dir(final)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.glob("*.h5"))
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # the data set's .shards folder, when it was the last one
    return files


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
            expected = (group.attrs.get("features_sha256"), group.attrs.get("labels_sha256"))
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

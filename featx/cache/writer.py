"""Writing a cache file crash-safely: rows flushed batch by batch, resumed after a kill.

Rows go to ``<final>.partial.h5``, flushed after every batch with ``n_done`` recording
the finished prefix, so a killed writer is resumed by the next run; only a file whose
every split is ``complete`` (checksums recorded) is moved into place with ``os.replace``.
Before writing, the disk is checked for room: HDF5 does not survive a write that fails
halfway. The caller holds the entry's lock (:func:`featx.cache.manage.entry_lock`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featx._version import __version__
from featx.cache.layout import (
    BACKBONE,
    CLASS_NAMES,
    COMPLETE,
    CREATED,
    DATASET,
    DEVICE,
    FEATURE_DIM,
    FEATURES,
    FEATURES_SHA256,
    FEATX_VERSION,
    FORMAT,
    FORMAT_VERSION,
    IMAGES_PER_SECOND,
    KEY,
    LABELS,
    LABELS_SHA256,
    N_DONE,
    SECONDS,
    EntryName,
    partial_path,
    rows_per_chunk,
    split_checksums,
)
from featx.cache.reader import entry_kind
from featx.core.atomic import fsync_dir, writing
from featx.core.faults import fault_point
from featx.core.hashing import jsonable
from featx.core.ownership import ensure_removable, ensure_replaceable

log = logging.getLogger(__name__)

#: room kept for HDF5's own structures and attributes when checking the disk has space
ROOM_MARGIN = 1 << 20


@dataclass(frozen=True)
class SplitPlan:
    """The shape of one split to be written: ``n_rows`` x ``dim`` float32 features."""

    n_rows: int
    dim: int


def _attr_value(value: Any) -> Any:
    """Store lists/tuples of numbers as arrays, dicts as JSON, None as empty string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)  # a str subclass (torch's TorchVersion) would become a numpy unicode array
    if isinstance(value, Mapping):
        return json.dumps(jsonable(value), sort_keys=True)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value):
            return np.asarray(value)
        return json.dumps(jsonable(list(value)))
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
        if KEY not in self.root_attrs:
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
            ForeignFileError: a file featx did not write is where the entry or its partial
                file goes (it is left as it is).
        """
        ensure_replaceable(self.final_path, entry_kind(None))
        with writing(self.partial):
            self.final_path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._try_resume()
            self._check_room(handle)
            if handle is None:
                discard_partial(self.final_path)
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
        done = sum(int(resumed[name].attrs.get(N_DONE, 0)) * row_bytes[name] for name in self.splits) if resumed is not None else 0
        free = shutil.disk_usage(self.final_path.parent).free
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        problem = None
        if total - done > free:
            problem = OSError(errno.ENOSPC, f"it needs about {_megabytes(total - done)} more and {_megabytes(free)} are free")
        elif limit != resource.RLIM_INFINITY and total > limit:
            problem = OSError(
                errno.EFBIG, f"it needs about {_megabytes(total)}, over this process's file size limit of {_megabytes(limit)}"
            )
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
        if not self.partial.exists() or not self.partial.is_file():
            return None
        try:
            handle = h5py.File(self.partial, "r+")
        except OSError as error:
            log.warning("discarding unreadable partial file %s (%s)", self.partial.name, error)
            return None
        try:
            if self._matches(handle):
                done = {name: int(handle[name].attrs.get(N_DONE, 0)) for name in self.splits}
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
        if attrs.get(KEY) != self.root_attrs[KEY] or int(attrs.get(FORMAT, -1)) != FORMAT_VERSION:
            return False
        for name, plan in self.splits.items():
            if name not in handle:
                return False
            group = handle[name]
            if group[FEATURES].shape != (plan.n_rows, plan.dim) or group[LABELS].shape != (plan.n_rows,):
                return False
            if not 0 <= int(group.attrs.get(N_DONE, -1)) <= plan.n_rows:
                return False
        return True

    def _initialise(self, handle: h5py.File) -> None:
        for name, value in self.root_attrs.items():
            handle.attrs[name] = _attr_value(value)
        handle.attrs[FORMAT] = FORMAT_VERSION
        handle.attrs[FEATX_VERSION] = __version__
        handle.attrs.setdefault(CREATED, _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        for name, plan in self.splits.items():
            group = handle.create_group(name)
            group.create_dataset(
                FEATURES,
                shape=(plan.n_rows, plan.dim),
                dtype="float32",
                chunks=(rows_per_chunk(plan.dim, plan.n_rows), plan.dim) if plan.n_rows and plan.dim else None,
            )
            group.create_dataset(LABELS, shape=(plan.n_rows,), dtype="int64")
            group.attrs[COMPLETE] = False
            group.attrs[N_DONE] = 0
            group.attrs[SECONDS] = 0.0
        handle.flush()

    # writing ------------------------------------------------------------------------
    @property
    def file(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError("CacheWriter is not open")
        return self._file

    def n_done(self, split: str) -> int:
        """Rows of ``split`` already written (a prefix: rows ``[0, n_done)``)."""
        return int(self.file[split].attrs[N_DONE])

    def is_complete(self, split: str) -> bool:
        """Whether ``split`` was finished (possibly by an earlier, resumed run)."""
        return bool(self.file[split].attrs[COMPLETE])

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
        done = int(group.attrs[N_DONE])
        if start != done:
            raise ValueError(f"rows must be written in order: {split} has {done} rows, got start={start}")
        count = len(features)
        if count != len(labels):
            raise ValueError("features and labels differ in length")
        if count == 0:
            return
        with writing(self.partial):
            group[FEATURES][start : start + count] = np.asarray(features, dtype=np.float32)
            group[LABELS][start : start + count] = np.asarray(labels, dtype=np.int64)
            self.file.flush()  # rows first, then the counter that vouches for them
            fault_point("cache.rows_flushed")
            group.attrs[N_DONE] = start + count
            group.attrs[SECONDS] = float(group.attrs[SECONDS]) + float(seconds)
            self.file.flush()
            fault_point("cache.rows_written")

    def finish_split(self, split: str, *, device: str) -> None:
        """Mark ``split`` complete once every row is written; record checksums and throughput."""
        group = self.file[split]
        n_rows = group[FEATURES].shape[0]
        if int(group.attrs[N_DONE]) != n_rows:
            raise ValueError(f"{split}: {int(group.attrs['n_done'])} of {n_rows} rows written")
        seconds = float(group.attrs[SECONDS])
        group.attrs[DEVICE] = device
        group.attrs[IMAGES_PER_SECOND] = n_rows / seconds if seconds > 0 else 0.0
        features_sha, labels_sha = split_checksums(group)
        with writing(self.partial):
            group.attrs[FEATURES_SHA256] = features_sha
            group.attrs[LABELS_SHA256] = labels_sha
            group.attrs[COMPLETE] = True
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
            self.file.attrs[COMPLETE] = True
            self.file.flush()
        self.close()
        with writing(self.final_path):
            fault_point("cache.before_rename")
            ensure_replaceable(self.final_path, entry_kind(None))
            os.replace(self.partial, self.final_path)
        fault_point("cache.after_rename")
        fsync_dir(self.final_path.parent)
        return self.final_path


def check_entry_place(final: Path) -> None:
    """Refuse, before any work, an entry whose files featx could not write: a file featx
    did not write where the entry or its partial file goes (each is left as it is).

    Raises:
        ForeignFileError: the file there is not a featx cache file.
    """
    ensure_replaceable(final, entry_kind(None))
    ensure_removable(partial_path(final), entry_kind(None))


def discard_partial(final: Path) -> None:
    """Delete the partial file of the entry whose final path is ``final``, when there is
    one and featx wrote it (a foreign file there is refused, never deleted).

    Raises:
        ForeignFileError: the file there is not a featx cache file.
    """
    partial = partial_path(final)
    if os.path.lexists(partial):
        ensure_removable(partial, entry_kind(None))
        partial.unlink()


def _megabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


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
    root = {KEY: EntryName.of(Path(path)).key, DATASET: "custom", BACKBONE: "custom", **(attrs or {})}
    root[CLASS_NAMES] = json.dumps(list(class_names))
    first = next(iter(arrays.values()))[0]
    root.setdefault(FEATURE_DIM, int(first.shape[1]))
    plans = {name: SplitPlan(len(x), x.shape[1]) for name, (x, _) in arrays.items()}
    with CacheWriter(path, root_attrs=root, splits=plans) as writer:
        for name, (x, y) in arrays.items():
            if not writer.is_complete(name):
                writer.write_rows(name, 0, x, y)
                writer.finish_split(name, device=device)
        return writer.commit()

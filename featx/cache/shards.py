"""Sharded extraction: contiguous row blocks, one cache file each, stitched without copying.

A sharded extraction of ``N`` shards splits every split's rows into ``N`` contiguous
blocks (:func:`shard_bounds`); shard ``K`` (0-based) computes block ``K`` of each split
into its own cache file, written like any cache file (crash-safe, resumable,
checksummed) with the entry's key and root attributes plus ``shard_index``,
``shard_count`` and ``shard_rows``::

    <cache>/<dataset>/.shards/<backbone>__<key>/shard-K-of-N.h5

When all ``N`` are complete, :func:`stitch` writes the entry itself,
``<cache>/<dataset>/<backbone>__<key>.h5``, whose ``/<split>/features`` and
``/<split>/labels`` are HDF5 virtual datasets mapping each block to its shard file
(relative paths, so the cache folder can move; listed in the root attribute ``shards``).
No feature is copied, and stage two reads the entry like any other. The stitched
file's checksums are computed through the virtual datasets, so ``featx cache verify``
checks the bytes a reader gets. The key is the unsharded extraction's key: a stitched
entry is a cache hit for a plain ``featx extract`` and the other way round.

A virtual dataset reads a missing source file silently as its fill value, so stitching
first checks that every shard is there, complete and of the same entry; the fill values
are NaN (features) and -1 (labels), which readers refuse; and a stitched entry is
trusted only while every shard file it references opens (:mod:`featx.cache.reader`).

This module never imports torch or dask: computing a shard is
:func:`featx.extraction.engine.extract_shard`, and running shards as Dask tasks is
:mod:`featx.cluster.executor`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from featx.cache import layout
from featx.cache.layout import (
    COMPLETE,
    CREATED,
    DEVICE,
    FEATURES,
    FEATURES_SHA256,
    IMAGES_PER_SECOND,
    LABELS,
    LABELS_SHA256,
    N_DONE,
    SECONDS,
    SHARD_ATTRS,
    SHARD_COUNT,
    SHARD_INDEX,
    SHARD_ROWS,
    SHARDS,
    SHARDS_DIR,
    EntryName,
    final_path_of,
    shards_dir,
    split_checksums,
)
from featx.cache.manage import entry_lock, find_entry
from featx.cache.reader import CacheInfo, SplitInfo, entry_kind, is_trusted, open_features
from featx.core import paths
from featx.core.atomic import atomic_path
from featx.core.errors import CacheError, ConfigError
from featx.core.faults import fault_point

log = logging.getLogger(__name__)

FILL_VALUES = {FEATURES: np.float32(np.nan), LABELS: np.int64(-1)}


# --------------------------------------------------------------------------- planning


def shard_bounds(n_rows: int, count: int) -> list[tuple[int, int]]:
    """Split rows ``[0, n_rows)`` into ``count`` contiguous blocks of nearly equal size.

    Args:
        n_rows: rows of the split.
        count: number of shards (>= 1).

    Returns:
        ``count`` half-open ``(start, stop)`` ranges in order, covering every row once;
        sizes differ by at most one (blocks are empty when ``count > n_rows``).
    """
    return [(index * n_rows // count, (index + 1) * n_rows // count) for index in range(count)]


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (0-based: ``0/4`` .. ``3/4``).

    Raises:
        ConfigError: ``count < 1`` or ``index`` outside ``0..count-1``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"shard {name} must be a whole number, got {value!r}")
        if self.count < 1:
            raise ConfigError(f"the number of shards must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard {self.index}/{self.count}: K must be in 0..{self.count - 1} (shards are numbered from 0, as $SLURM_ARRAY_TASK_ID with --array=0-{self.count - 1})"
            )

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """``"2/8"`` -> ``ShardSpec(2, 8)``.

        Raises:
            ConfigError: not ``K/N`` with whole numbers, or K out of range.
        """
        index, sep, count = str(text).partition("/")
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise ConfigError(f"--shard {text!r}: use K/N, shard K (from 0) of N, e.g. --shard 0/8")
        return cls(int(index), int(count))

    def rows(self, n_rows: int) -> tuple[int, int]:
        """This shard's ``(start, stop)`` block of a split of ``n_rows`` rows."""
        return shard_bounds(n_rows, self.count)[self.index]

    def path(self, final: Path) -> Path:
        """This shard's file for the entry whose final path is ``final``."""
        return shards_dir(final) / f"shard-{self.index}-of-{self.count}.h5"

    def attrs(self, sizes: Mapping[str, int]) -> dict[str, Any]:
        """The root attributes that mark a shard file: index, count and, per split,
        ``[start, stop, n_rows of the whole split]``."""
        rows = {name: [*self.rows(n), n] for name, n in sizes.items()}
        return {SHARD_INDEX: self.index, SHARD_COUNT: self.count, SHARD_ROWS: rows}

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class ShardResult:
    """What computing (or finding) one shard gave.

    Attributes:
        final: the entry's final path (the stitched file, once there).
        path: the shard's file.
        key: the entry's cache key, as planned where the shard ran.
        shard: which shard.
        computed: the shard's rows were computed now (False: found complete, or the
            entry itself was already in the cache).
        stitched: the entry's path when it is complete (stitched now or before), else None.
    """

    final: Path
    path: Path
    key: str
    shard: ShardSpec
    computed: bool
    stitched: Path | None = None


def shard_is_done(path: Path, *, key: str, shard: ShardSpec, sizes: Mapping[str, int]) -> bool:
    """Whether ``path`` is a complete shard file of this entry, shard and split sizes."""
    if not path.exists():
        return False
    try:
        _check_shard(path, key=key, shard=shard, sizes=sizes)
    except CacheError as error:
        log.warning("shard file %s cannot be used (%s); computing it again", path.name, error)
        return False
    return True


def _check_shard(path: Path, *, key: str, shard: ShardSpec, sizes: Mapping[str, int] | None) -> CacheInfo:
    """Open a shard file and check it belongs to entry ``key`` as ``shard``.

    Args:
        sizes: the expected rows of each whole split; None takes them from the file
            (then only their consistency with ``shard`` is checked).

    Returns:
        The shard file's description.

    Raises:
        CacheError: incomplete, damaged, or another entry's, shard or split sizes.
    """
    info = open_features(path, splits=())
    info = open_features(path, splits=tuple(info.splits))
    attrs = info.attrs
    if info.key != key:
        raise CacheError(f"{path} belongs to entry {info.key}, not {key}")
    if (attrs.get(SHARD_INDEX), attrs.get(SHARD_COUNT)) != (shard.index, shard.count):
        raise CacheError(f"{path} says it is shard {attrs.get(SHARD_INDEX)}/{attrs.get(SHARD_COUNT)}, not {shard}")
    recorded = attrs.get(SHARD_ROWS) or {}
    wanted = sizes if sizes is not None else {name: int(value[2]) for name, value in recorded.items()}
    if set(recorded) != set(wanted) or set(info.splits) != set(wanted):
        raise CacheError(f"{path} holds splits {sorted(info.splits)}, expected {sorted(wanted)}")
    for name, n_rows in wanted.items():
        start, stop = shard.rows(n_rows)
        if list(recorded[name]) != [start, stop, n_rows] or info.splits[name].n_rows != stop - start:
            raise CacheError(f"{path}: split {name!r} holds rows {recorded[name]}, expected [{start}, {stop}) of {n_rows}")
    return info


# --------------------------------------------------------------------------- the set of shards


@dataclass(frozen=True)
class ShardSet:
    """The shard files of one entry for one shard count, as found on disk.

    Attributes:
        final: the entry's final path.
        count: the number of shards.
        done: indices whose shard file is there (complete files only).
        size_bytes: bytes of those files.
    """

    final: Path
    count: int
    done: tuple[int, ...]
    size_bytes: int = 0

    @property
    def key(self) -> str:
        return EntryName.of(self.final).key

    @property
    def backbone(self) -> str:
        return EntryName.of(self.final).backbone

    @property
    def missing(self) -> tuple[int, ...]:
        return tuple(sorted(set(range(self.count)) - set(self.done)))

    def describe(self) -> str:
        """``"shards 2/3 done"``."""
        return f"shards {len(self.done)}/{self.count} done"


def shard_sets(final: Path) -> list[ShardSet]:
    """The shard files present for an entry, grouped by shard count (smallest count first)."""
    by_count: dict[int, dict[int, Path]] = {}
    folder = shards_dir(final)
    for path in folder.glob("shard-*-of-*.h5") if folder.is_dir() else ():
        match = layout.SHARD_FILE.match(path.name)
        if match:
            by_count.setdefault(int(match.group(2)), {})[int(match.group(1))] = path
    return [
        ShardSet(final=final, count=count, done=tuple(sorted(files)), size_bytes=sum(p.stat().st_size for p in files.values()))
        for count, files in sorted(by_count.items())
    ]


def unfinished_shard_sets(cache_dir: str | os.PathLike[str] | None = None) -> list[ShardSet]:
    """Shard sets under the cache root whose entry has no final file yet (for ``cache ls``)."""
    root = paths.cache_dir(cache_dir)
    found: list[ShardSet] = []
    for folder in sorted(root.glob(f"*/{SHARDS_DIR}/*{layout.SEPARATOR}*")):
        final = final_path_of(folder)
        if folder.is_dir() and not final.exists():
            found.extend(shard_sets(final))
    return found


# --------------------------------------------------------------------------- stitching


def stitch(final: str | os.PathLike[str], count: int, *, force: bool = False) -> Path:
    """Write the entry ``final`` as virtual datasets over its ``count`` shard files.

    Holds the entry's lock. When ``final`` is already a trusted entry (stitched before,
    or extracted without shards) it is kept unless ``force``.

    Args:
        final: the entry's final path (``<cache>/<dataset>/<backbone>__<key>.h5``).
        count: the number of shards.
        force: stitch again even when the entry is trusted (after shards were
            recomputed, so that its checksums cover the new rows).

    Returns:
        The entry's path.

    Raises:
        CacheError: a shard file is missing, incomplete, damaged, or does not belong
            to this entry, shard count or split sizes (the message names them).
    """
    final = Path(final)
    spec = ShardSpec(0, count)  # validates count
    with entry_lock(final, on_wait=lambda: log.info("another featx process is writing %s; waiting for it", final.name)):
        if not force and is_trusted(final, then="stitching it again"):
            log.info("%s is complete already", final.name)
            return final
        infos = _complete_shards(final, spec.count)
        _write_stitched(final, infos)
    log.info("stitched %s from %d shard files", final, count)
    return final


def stitch_results(results: Sequence[ShardResult]) -> Path:
    """Stitch the entry of a set of shard results (the last step of a Dask extraction).

    Stitches again when any shard was computed now; returns the entry as it is when
    none was and it is trusted.

    Raises:
        CacheError: the shards planned different entries (the workers that ran them saw
            different data, weights or precision), or a shard is unusable.
    """
    if not results:
        raise CacheError("no shards to stitch")
    finals = {result.final for result in results}
    if len(finals) > 1:
        listed = ", ".join(sorted(f"shard {r.shard} -> {r.key}" for r in results))
        raise CacheError(
            f"the shards disagree about the cache entry ({listed}): the workers that ran them see different data, "
            "weights or precision; put the data and weights on a filesystem every worker shares (same paths) and "
            "pass --precision explicitly when workers differ in device"
        )
    (final,) = finals
    count = results[0].shard.count
    if sorted(r.shard.index for r in results) != list(range(count)) or any(r.shard.count != count for r in results):
        raise CacheError(f"incomplete set of shard results for {final.name}: {sorted(str(r.shard) for r in results)}")
    return stitch(final, count, force=any(r.computed for r in results))


def stitch_if_complete(final: Path, count: int, *, force: bool = False) -> Path | None:
    """Stitch the entry when all ``count`` shard files are there; None while some are missing.

    Used after one shard of a Slurm-style array: whichever shard finishes last stitches.
    """
    present = next((s for s in shard_sets(final) if s.count == count), None)
    if present is None or present.missing:
        missing = present.missing if present else tuple(range(count))
        log.info("%d of %d shards of %s still missing (%s)", len(missing), count, final.name, _indices(missing))
        return None
    return stitch(final, count, force=force)


def stitch_entry(key: str, *, count: int | None = None, cache_dir: str | os.PathLike[str] | None = None, force: bool = False) -> Path:
    """Complete a sharded entry found by key (``featx cache stitch KEY``).

    Args:
        key: a cache key, a unique prefix of one, or a path of the entry.
        count: the shard count, when shard files of several counts are present.
        cache_dir: cache root (default ``features/`` or ``FEATX_CACHE_DIR``).
        force: stitch again even when the entry is trusted.

    Returns:
        The entry's path.

    Raises:
        CacheError: no such entry, no shard files, ambiguous count, or a shard missing
            or unusable.
    """
    final = final_path_of(find_entry(key, cache_dir))
    sets = shard_sets(final)
    if count is None:
        if not sets:
            raise CacheError(f"{final.name} has no shard files (looked in {shards_dir(final)})")
        if len(sets) > 1:
            raise CacheError(
                f"{final.name} has shard files for several shard counts ({', '.join(str(s.count) for s in sets)}); pass --shards N"
            )
        count = sets[0].count
    return stitch(final, count, force=force)


def _indices(indices: Sequence[int]) -> str:
    return ", ".join(str(i) for i in indices) or "none"


def _complete_shards(final: Path, count: int) -> list[tuple[Path, CacheInfo]]:
    """Every shard file of the set, checked against each other and the entry's key."""
    key = EntryName.of(final).key
    files = [ShardSpec(index, count).path(final) for index in range(count)]
    missing = [index for index, path in enumerate(files) if not path.exists()]
    if missing:
        raise CacheError(
            f"cannot stitch {final.name}: shard(s) {_indices(missing)} of {count} are missing in {shards_dir(final)}; "
            f"compute them with the same `featx extract ... --shard K/{count}` or run it with --scheduler ADDRESS --shards {count}"
        )
    infos = []
    sizes: dict[str, int] | None = None
    for index, path in enumerate(files):
        info = _check_shard(path, key=key, shard=ShardSpec(index, count), sizes=sizes)
        sizes = {name: int(value[2]) for name, value in info.attrs[SHARD_ROWS].items()}
        infos.append((path, info))
    dims = {info.dim for _, info in infos if any(s.n_rows for s in info.splits.values())}
    if len(dims) > 1:
        raise CacheError(f"cannot stitch {final.name}: its shard files hold features of different widths ({sorted(dims)})")
    return infos


def _write_stitched(final: Path, infos: Sequence[tuple[Path, CacheInfo]]) -> None:
    """Write the virtual-dataset entry atomically (a temporary file beside ``final``, so
    that the relative source names hold, then ``os.replace``).

    The checksums are read through the virtual datasets with the file opened read-only:
    HDF5 opens a virtual dataset's sources with the file's own access mode, and read
    from a writable file it would open (and touch) every shard file for writing.
    """
    first_path, first = infos[0]
    count = len(infos)
    sizes = {name: int(value[2]) for name, value in first.attrs[SHARD_ROWS].items()}
    dim = max(info.dim for _, info in infos)
    relative = [os.path.relpath(path, final.parent) for path, _ in infos]
    with h5py.File(first_path, "r") as handle:
        root = {name: value for name, value in handle.attrs.items() if name not in SHARD_ATTRS}
    with atomic_path(final, kind=entry_kind(EntryName.of(final).key)) as tmp:
        with h5py.File(tmp, "w") as out:
            for name, value in root.items():
                out.attrs[name] = value
            out.attrs[CREATED] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            out.attrs[SHARD_COUNT] = count
            out.attrs[SHARDS] = json.dumps(relative)
            for split, n_rows in sizes.items():
                group = out.create_group(split)
                bounds = shard_bounds(n_rows, count)
                for dataset, shape in ((FEATURES, (n_rows, dim)), (LABELS, (n_rows,))):
                    layout = h5py.VirtualLayout(shape=shape, dtype=np.asarray(FILL_VALUES[dataset]).dtype)
                    for source, (start, stop) in zip(relative, bounds):
                        if stop > start:
                            layout[start:stop] = h5py.VirtualSource(source, f"{split}/{dataset}", shape=(stop - start, *shape[1:]))
                    group.create_virtual_dataset(dataset, layout, fillvalue=FILL_VALUES[dataset])
                _split_attrs(group, [info.splits[split] for _, info in infos], n_rows)
        with h5py.File(tmp, "r") as handle:
            checksums = {split: split_checksums(handle[split]) for split in sizes}
        with h5py.File(tmp, "r+") as out:
            for split, (features_sha, labels_sha) in checksums.items():
                out[split].attrs[FEATURES_SHA256] = features_sha
                out[split].attrs[LABELS_SHA256] = labels_sha
                out[split].attrs[COMPLETE] = True
        fault_point("shards.stitch_written")


def _split_attrs(group: h5py.Group, parts: Sequence[SplitInfo], n_rows: int) -> None:
    """The stitched split's attributes: compute seconds summed over the shards (so
    ``images_per_second`` is per device, not of the whole cluster) and the devices used."""
    seconds = float(sum(part.seconds for part in parts))
    devices = sorted({part.device for part in parts if part.n_rows and part.device})
    group.attrs[COMPLETE] = False
    group.attrs[N_DONE] = n_rows
    group.attrs[SECONDS] = seconds
    group.attrs[IMAGES_PER_SECOND] = n_rows / seconds if seconds > 0 else 0.0
    group.attrs[DEVICE] = f"{'; '.join(devices)} ({len(parts)} shards)"

"""Managing the cache: listing entries, finding one by key, removing one, and its lock.

``featx cache ls | info | rm | verify`` are thin layers over these functions. An entry is
found by its key, a unique prefix of one, or its path; removing it takes its lock
(without waiting: a running extraction is never pulled from under its writer).

Only files featx wrote are ever deleted: a file is removed when it lies where the
layout keeps the entry's files under the cache root (:func:`featx.cache.layout.entry_of`)
*and* its own attributes say featx wrote it for that entry
(:func:`featx.cache.reader.entry_kind`, checked by :mod:`featx.core.ownership`). Anything
else (a user's ``results.h5``, a text file named ``notes.h5``, a copy of an entry kept
elsewhere, a file in the cache that another entry's attributes claim) is refused with
one line, and nothing is deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from featx.cache.layout import (
    PARTIAL_SUFFIX,
    SEPARATOR,
    SHARD_FILE,
    SHARDS_DIR,
    EntryName,
    entry_of,
    final_path_of,
    is_partial,
    partial_path,
    shards_dir,
)
from featx.cache.reader import CacheInfo, entry_kind, is_trusted, read_info
from featx.core import paths
from featx.core.errors import BusyError, CacheBusyError, CacheError, ForeignFileError
from featx.core.locks import LOCK_DIR, exclusive, lock_path
from featx.core.ownership import ensure_removable, foreign_reason

log = logging.getLogger(__name__)


@contextlib.contextmanager
def entry_lock(final: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock of one cache entry (across processes).

    Args:
        final: the entry's final path.
        wait: block until the lock is free; otherwise raise at once.
        on_wait: called once (no arguments) before blocking, e.g. to tell the user.

    Raises:
        CacheBusyError: ``wait`` is false and another process holds the lock.
        WriteError: the lock file cannot be created (the folder is not writable).
    """
    with exclusive(final, wait=wait, on_wait=on_wait, busy=CacheBusyError):
        yield


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
            entries.append(
                CacheInfo(
                    path=path,
                    key=EntryName.of(path).key,
                    attrs={"damaged": True},
                    size_bytes=os.lstat(path).st_size,
                    partial=is_partial(path),
                )
            )
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
        name = EntryName.of(path)
        if name.key.startswith(wanted) or name.stem == key:
            matches.append(path)
    for folder in sorted(root.glob(f"*/{SHARDS_DIR}/*__*")):
        if folder.is_dir() and not final_path_of(folder).exists() and (EntryName.of(folder).key.startswith(wanted) or folder.name == key):
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
    final = [p for p in matches if p.suffix == ".h5" and not is_partial(p)]
    return final[0] if final else matches[0]


def remove_entry(key: str, cache_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Delete the entry matching ``key``: its final file, partial file, shard files and lock file.

    Every file is checked before any is deleted: it must lie in the cache layout under
    the cache root and carry featx's attributes for this entry (see the module doc).

    Raises:
        CacheError: nothing or more than one entry matches.
        ForeignFileError: the path given is not in the cache, or a file in the entry's
            place was not written by featx for it; nothing is deleted.
        CacheBusyError: another process is writing it.
    """
    root = paths.cache_dir(cache_dir)
    found = find_entry(key, cache_dir)
    final = entry_of(found, root)
    if final is None:
        raise ForeignFileError(
            f"refusing to remove {found}: it is not an entry of the feature cache ({root}); featx removes only the cache files "
            "it wrote there (pass --cache-dir when the cache is elsewhere)"
        )
    kind = entry_kind(EntryName.of(final).key)
    removed: list[Path] = []
    with entry_lock(final, wait=False):
        files = [path for path in (final, partial_path(final)) if os.path.lexists(path)]
        for path in files:
            ensure_removable(path, kind)
        for path in files:
            path.unlink()
            removed.append(path)
        removed.extend(remove_shards(final))
    _remove_lock_file(final)
    return removed


def remove_shards(final: Path) -> list[Path]:
    """Delete the shard files of an entry (every shard file featx wrote for it, partial or
    final, of any shard count) and return them; the shard folder goes too once empty.
    Anything else in the folder is left there, and named in the log. The caller holds
    the entry's lock."""
    folder = shards_dir(final)
    if not folder.is_dir() or folder.is_symlink():
        return []
    key = EntryName.of(final).key
    removed, kept = [], []
    for path in sorted(folder.iterdir()):
        if path.name == LOCK_DIR and path.is_dir() and not path.is_symlink():
            _remove_lock_folder(path)
            if not path.exists():
                continue
        match = SHARD_FILE.match(path.name.replace(".partial.h5", ".h5"))
        shard = (int(match.group(1)), int(match.group(2))) if match else None
        if shard is None or foreign_reason(path, entry_kind(key, shard)):
            kept.append(path.name)
            continue
        path.unlink()
        removed.append(path)
    if kept:
        log.warning(
            "left %d file(s) featx did not write in %s: %s", len(kept), folder, ", ".join(kept[:5]) + (", ..." if len(kept) > 5 else "")
        )
        return removed
    for empty in (folder, folder.parent):  # the entry's folder, then the data set's .shards folder when it was the last one
        with contextlib.suppress(OSError):
            empty.rmdir()
    return removed


def _remove_lock_folder(folder: Path) -> None:
    """The lock files of shard files (``.locks/shard-K-of-N.h5.lock``, plain files featx
    made), then the folder when nothing else is in it."""
    for path in folder.iterdir():
        if SHARD_FILE.match(path.name.removesuffix(".lock").replace(".partial.h5", ".h5")) and stat.S_ISREG(os.lstat(path).st_mode):
            path.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _remove_lock_file(final: Path) -> None:
    """The entry's lock file (featx's, by its place under ``.locks``): removed when it is a plain file."""
    path = lock_path(final)
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            path.unlink()


def prune_cache(cache_dir: str | os.PathLike[str] | None = None, *, dry_run: bool = False) -> list[Path]:
    """Delete what no extraction needs any more, and return it (``dry_run``: only list it).

    * partial entry files (``*.partial.h5``) whose entry lock no process holds: an
      abandoned extraction (a new ``extract`` would start it over);
    * the shard files of an entry that is complete without them (extracted again
      whole, so its file reads none of them); an unfinished sharded extraction's shards
      are kept (``featx cache stitch`` needs them), as are those a stitched entry reads;
    * lock files (``.locks/*.lock``) that no process holds.

    Each file is checked as :func:`remove_entry` checks it (featx wrote it, for that
    entry); anything else is left where it is and named in the log.
    """
    root = paths.cache_dir(cache_dir)
    pruned: list[Path] = []
    for partial in sorted(root.glob(f"*/*{PARTIAL_SUFFIX}")):
        final = final_path_of(partial)
        with contextlib.ExitStack() as stack:
            if not _locked(stack, final):
                log.info("kept %s: an extraction is writing it", partial)
                continue
            if foreign_reason(partial, entry_kind(EntryName.of(final).key)):
                log.warning("left %s: featx did not write it for its entry", partial)
                continue
            if not dry_run:
                partial.unlink()
            pruned.append(partial)
    for folder in sorted(root.glob(f"*/{SHARDS_DIR}/*{SEPARATOR}*")):
        final = final_path_of(folder)
        if not folder.is_dir() or folder.is_symlink() or not final.is_file():
            continue
        with contextlib.ExitStack() as stack:
            if not _locked(stack, final) or not is_trusted(final) or read_info(final).stitched:
                continue  # being written, damaged, or reading these shards: keep them
            if dry_run:
                pruned.extend(p for p in sorted(folder.iterdir()) if p.name != LOCK_DIR)
            else:
                pruned.extend(remove_shards(final))
    for lock in sorted(root.rglob(f"{LOCK_DIR}/*.lock")):
        if not lock.exists() or not stat.S_ISREG(os.lstat(lock).st_mode):
            continue
        with contextlib.ExitStack() as stack:
            if not _locked(stack, lock.parent.parent / lock.name.removesuffix(".lock")):
                continue  # a process holds it
            if not dry_run:
                lock.unlink()
            pruned.append(lock)
    if not dry_run:
        for folder in sorted(root.rglob(LOCK_DIR), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
    return pruned


def _locked(stack: contextlib.ExitStack, target: Path) -> bool:
    """Take ``target``'s lock for the rest of ``stack`` without waiting; False when another process holds it."""
    try:
        stack.enter_context(exclusive(target, wait=False))
    except BusyError:
        return False
    return True

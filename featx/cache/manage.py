"""Managing the cache: listing entries, finding one by key, removing one, and its lock.

``featx cache ls | info | rm | verify`` are thin layers over these functions. An entry is
found by its key, a unique prefix of one, or its path; removing it takes its lock
(without waiting: a running extraction is never pulled from under its writer).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from featx.cache.layout import SHARDS_DIR, EntryName, final_path_of, is_partial, partial_path, shards_dir
from featx.cache.reader import CacheInfo, read_info
from featx.core import paths
from featx.core.errors import CacheBusyError, CacheError
from featx.core.locks import exclusive, lock_path


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
                    path=path, key=EntryName.of(path).key, attrs={"damaged": True}, size_bytes=path.stat().st_size, partial=is_partial(path)
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

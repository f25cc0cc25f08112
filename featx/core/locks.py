"""Exclusive locks across processes, one per file featx writes (a cache entry, a run record).

The lock of ``<folder>/<name>`` is the file ``<folder>/.locks/<name>.lock`` (filelock): it
is left in place after release, harmless, so that no process ever deletes a lock another
one is about to take.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from featx.core.atomic import write_error, writing
from featx.core.errors import BusyError

LOCK_DIR = ".locks"


def lock_path(target: Path) -> Path:
    """The lock file guarding the writing of ``target``."""
    return target.parent / LOCK_DIR / (target.name + ".lock")


@contextlib.contextmanager
def exclusive(
    target: Path,
    *,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
    busy: Callable[[str], BusyError] = BusyError,
) -> Iterator[None]:
    """Hold the exclusive lock of ``target`` for the duration of a block.

    Args:
        target: the file the lock guards (it need not exist).
        wait: block until the lock is free; otherwise raise at once.
        on_wait: called once (no arguments) before blocking, e.g. to tell the user.
        busy: builds the error raised when ``wait`` is false and the lock is held.

    Raises:
        BusyError: ``wait`` is false and another process holds the lock (as ``busy`` makes it).
        WriteError: the lock file cannot be created (the folder is not writable).
    """
    from filelock import FileLock, Timeout

    path = lock_path(target)
    lock = FileLock(str(path))
    with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:  # a TimeoutError, so an OSError: caught first
        if not wait:
            raise busy(f"another featx process is writing {target.name}; try again when it has finished") from None
        if on_wait is not None:
            on_wait()
        lock.acquire()
    except OSError as error:
        raise write_error(path, error) from error
    try:
        yield
    finally:
        lock.release()

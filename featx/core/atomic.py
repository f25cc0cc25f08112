"""Atomic file replacement: a reader sees the old file or the new one, never half of one.

A write that fails for lack of space or permission raises :class:`~featx.core.errors.WriteError`
(one line for the user), and the file that was there before is left as it was. Every
write names the kind of file it writes (:class:`~featx.core.ownership.FileKind`): a file
already in its place is replaced only when featx wrote it as that kind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from featx.core.errors import WriteError
from featx.core.faults import fault_point
from featx.core.ownership import FileKind, ensure_replaceable

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST}


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0o666 less the umask (read once, at import)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_error(path: str | os.PathLike[str], error: OSError) -> WriteError:
    """A :class:`WriteError` for ``path`` that says what went wrong and what to do.

    HDF5 reports the errno only inside its message (``errno = 28``): it is read from there
    when the exception carries none.
    """
    code = error.errno
    if code is None:
        found = re.search(r"errno = (\d+)", str(error))
        code = int(found.group(1)) if found else None
    reason = error.strerror or " ".join(str(error).split())[:200]
    if code in _FULL:
        hint = "the disk (or your quota) is full: free some space and run the command again"
    elif code in _DENIED:
        hint = "the folder is not writable: choose another with --cache-dir / FEATX_CACHE_DIR or --reports-dir / FEATX_REPORTS_DIR"
    else:
        hint = "check the disk and the folder's permissions"
    return WriteError(f"cannot write {path}: {reason}; {hint}")


@contextlib.contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into a :class:`WriteError` about ``path``."""
    try:
        yield
    except OSError as error:
        raise write_error(path, error) from error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, kind: FileKind) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Args:
        path: the file to write.
        kind: what it is; a file already at ``path`` must be featx's own of this kind.

    Raises:
        ForeignFileError: a file featx did not write (or of another kind) is at ``path``;
            checked before anything is written, and again just before the rename.
        WriteError: the folder cannot be created or written, or the disk is full (also
            when the block's own writing fails so).
    """
    target = Path(path)
    ensure_replaceable(target, kind)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.chmod(tmp_name, FILE_MODE)  # mkstemp makes 0o600; the result is an ordinary output file
    tmp = Path(tmp_name)
    try:
        with writing(target):
            yield tmp
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            fault_point("atomic.before_replace")
            ensure_replaceable(target, kind)  # nothing took its place while the block ran
            os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, kind: FileKind) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`) and return the path."""
    with atomic_path(path, kind=kind) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, kind: FileKind) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_path`) and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), kind=kind)

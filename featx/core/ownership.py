"""Whether a file is featx's to delete or to write over: the one check every deleting and
overwriting command makes.

featx never deletes or overwrites a file it did not write. Each kind of file featx
writes (a cache entry, a run record, a model, a PCA plot, the report page, ...) is a
:class:`FileKind`, declared by the module that owns the format, with a test that
recognises a file of that kind as featx writes it (its attributes, its JSON fields, a
marker in its first bytes). Before a file is replaced (:func:`ensure_replaceable`, used
by :func:`featx.core.atomic.atomic_path`) or removed (:func:`ensure_removable`), it must
be absent, or a regular file (not a folder, a link, a pipe or a device) of that kind;
anything else is a :class:`~featx.core.errors.ForeignFileError`, and the file is left as
it is. The location is the caller's half of the check: a writer only ever targets its
own paths, and ``featx cache rm`` checks that a file lies in the cache layout first.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featx.core.errors import ForeignFileError

#: a file larger than this is never taken for a featx JSON or text file (nor read to find out)
TEXT_LIMIT = 64 << 20


@dataclass(frozen=True)
class FileKind:
    """A kind of file featx writes, and how to recognise one that featx wrote.

    Attributes:
        name: what it is, for messages (``run record``, ``report page``).
        recognise: ``path -> bool``: whether the existing regular file at ``path`` is one
            of this kind as featx writes it. It may raise ``OSError`` or ``ValueError``
            (taken as "no").
    """

    name: str
    recognise: Callable[[Path], bool]


def foreign_reason(path: str | os.PathLike[str], kind: FileKind) -> str | None:
    """Why ``path`` is not featx's ``kind`` to replace or remove, or None when it is
    (or when nothing is there)."""
    target = Path(path)
    try:
        mode = os.lstat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a file where a folder goes: nothing can be)
        return None
    except OSError as error:
        return f"cannot be examined ({error.strerror or error})"
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_ISDIR(mode):
        return "is a folder"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    try:
        recognised = bool(kind.recognise(target))
    except (OSError, ValueError):
        recognised = False
    return None if recognised else f"is not a {kind.name} written by featx"


def ensure_replaceable(path: str | os.PathLike[str], kind: FileKind) -> None:
    """Refuse to write over ``path`` unless it is absent or featx's own ``kind``.

    Raises:
        ForeignFileError: something else is there; the message names it and what to do.
    """
    reason = foreign_reason(path, kind)
    if reason:
        raise ForeignFileError(
            f"refusing to write the {kind.name} {path}: the file there {reason}, and featx never writes over a file it did not "
            "write; choose another path, or move that file away"
        )


def ensure_removable(path: str | os.PathLike[str], kind: FileKind) -> None:
    """Refuse to delete ``path`` unless it is absent or featx's own ``kind``.

    Raises:
        ForeignFileError: something else is there; the message names it.
    """
    reason = foreign_reason(path, kind)
    if reason:
        raise ForeignFileError(
            f"refusing to remove {path}: it {reason}; featx removes only the files it wrote (delete it yourself if you must)"
        )


# --------------------------------------------------------------------------- recognisers


def head(path: Path, size: int = 4096) -> bytes:
    """The first ``size`` bytes of a file."""
    with open(path, "rb") as handle:
        return handle.read(size)


def json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object a file holds, or None (not JSON, not an object, or too large to be featx's)."""
    if path.stat().st_size > TEXT_LIMIT:
        return None
    data = json.loads(path.read_bytes().decode("utf-8"))
    return data if isinstance(data, dict) else None


def json_with(*fields: str) -> Callable[[Path], bool]:
    """A recogniser of JSON objects that have every one of ``fields``."""

    def recognise(path: Path) -> bool:
        data = json_object(path)
        return data is not None and all(name in data for name in fields)

    return recognise


def starts_with(*prefixes: bytes) -> Callable[[Path], bool]:
    """A recogniser of files whose first bytes are one of ``prefixes``."""

    def recognise(path: Path) -> bool:
        first = head(path, max(len(p) for p in prefixes))
        return any(first.startswith(prefix) for prefix in prefixes)

    return recognise


def contains(marker: bytes, *, within: int = 4096) -> Callable[[Path], bool]:
    """A recogniser of files holding ``marker`` in their first ``within`` bytes."""

    def recognise(path: Path) -> bool:
        return marker in head(path, within)

    return recognise

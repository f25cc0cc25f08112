"""Name lookup shared by every registry (datasets, classifiers, ...).

Registries themselves are plain dicts filled in the module that owns the things they
name; this module only gives them one error with the closest valid names.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

from featx.core.console import QUOTE_LIMIT, quote
from featx.core.errors import UnknownNameError

T = TypeVar("T")


def closest_names(name: str, candidates: Iterable[str], *, n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look most like ``name`` (best first)."""
    pool = list(candidates)
    if len(name) > QUOTE_LIMIT:  # nothing registered is that long; comparing would only cost time
        return []
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    if not close:
        lowered = name.lower()
        close = [c for c in pool if lowered in c.lower()][:n]
    return close


def unknown_name_error(name: str, candidates: Iterable[str], *, kind: str, list_all: bool = True) -> UnknownNameError:
    """Build the error for an unknown ``kind`` called ``name``, naming close matches."""
    pool = sorted(candidates)
    close = closest_names(name, pool)
    message = f"unknown {kind} {quote(name)}"
    if close:
        message += f"; did you mean {', '.join(close)}?"
    if list_all and len(pool) <= 20:
        message += f" (valid: {', '.join(pool)})"
    return UnknownNameError(message)


def lookup(registry: Mapping[str, T], name: str, *, kind: str) -> T:
    """Return ``registry[name]`` or raise :class:`UnknownNameError` with suggestions.

    Args:
        registry: the registry to look in.
        name: the name the user gave.
        kind: what the registry holds, for the message ("classifier", "dataset").

    Raises:
        UnknownNameError: ``name`` is not registered.
    """
    try:
        return registry[name]
    except KeyError:
        raise unknown_name_error(name, registry, kind=kind) from None

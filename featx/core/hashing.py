"""Hashing and canonical JSON: one recipe for every key featx computes.

A cache key (what a feature file holds) and a run key (what a fit did) are both
:func:`short_hash` of a JSON description: the description is made JSON-ready by
:func:`jsonable` and serialised canonically (sorted keys, no spaces), so that the same
request always gives the same key whatever the order of its fields.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: hexadecimal characters of a key
KEY_LENGTH = 16
_BLOCK = 1 << 20


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples, paths and enums turned into JSON types.

    Mapping keys become strings; anything else that JSON cannot hold becomes its ``repr``.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def canonical_json(value: Any) -> str:
    """The one serialisation keys are hashed from: :func:`jsonable`, sorted keys, no spaces."""
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"))


def short_hash(value: Any) -> str:
    """The first 16 hexadecimal characters of the sha256 of :func:`canonical_json` ``(value)``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:KEY_LENGTH]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()

"""Where featx reads and writes by default, with the environment overrides.

Precedence: an explicit argument, then the environment variable, then the default.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "FEATX_CACHE_DIR"
REPORTS_DIR_ENV = "FEATX_REPORTS_DIR"
DATA_DIR_ENV = "FEATX_DATA_DIR"
WEIGHTS_DIR_ENV = "FEATX_WEIGHTS_DIR"


def _resolve(explicit: str | os.PathLike[str] | None, env: str, default: Path) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser()
    from_env = os.environ.get(env)
    if from_env:
        return Path(from_env).expanduser()
    return default


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The feature cache root (default ``features/``, env ``FEATX_CACHE_DIR``)."""
    return _resolve(explicit, CACHE_DIR_ENV, Path("features"))


def reports_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The reports root (default ``reports/``, env ``FEATX_REPORTS_DIR``)."""
    return _resolve(explicit, REPORTS_DIR_ENV, Path("reports"))


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where downloadable data sets live (default ``~/.cache/featx/data``, env ``FEATX_DATA_DIR``)."""
    return _resolve(explicit, DATA_DIR_ENV, Path.home() / ".cache" / "featx" / "data")


def weights_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where featx keeps weights it converted (default ``~/.cache/featx/weights``, env ``FEATX_WEIGHTS_DIR``)."""
    return _resolve(explicit, WEIGHTS_DIR_ENV, Path.home() / ".cache" / "featx" / "weights")


def safe_name(name: str) -> str:
    """A file-name-safe form of a backbone, data set or classifier name (``hf-hub:a/b`` -> ``hf-hub-a-b``)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
    return cleaned.strip("-.") or "unnamed"

"""featx: transfer learning without training.

Frozen pretrained timm backbones turn images into embeddings cached in HDF5; classical
scikit-learn classifiers are grid-searched on the cache; a report compares them.

The public verbs are re-exported here. Stage one (``extract``) imports torch; it is
loaded only when first used, so stage two (``load_features``, ``fit``) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from featx._version import __version__
from featx.cachefile import load_features
from featx.errors import FeatxError

# public name -> module that defines it; imported on first access (PEP 562).
_LAZY: dict[str, str] = {
    "extract": "featx.extraction",
    "ExtractConfig": "featx.extraction",
    "list_datasets": "featx.datasets",
}

if TYPE_CHECKING:  # pragma: no cover
    from featx.datasets import list_datasets
    from featx.extraction import ExtractConfig, extract

__all__ = ["FeatxError", "__version__", "load_features", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'featx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

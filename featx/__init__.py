"""featx: transfer learning without training.

Frozen pretrained timm backbones turn images into embeddings cached in HDF5; classical
scikit-learn classifiers are grid-searched on the cache; a report compares them, and
a pipeline file declares a whole comparison (``run_pipeline``, ``report``, ``demo``).

The public verbs are re-exported here. Stage one (``extract``) imports torch; it is
loaded only when first used, so stage two (``load_features``, ``fit``, ``pca``) never
imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from featx._version import __version__
from featx.cachefile import load_features
from featx.errors import FeatxError

# public name -> module that defines it; imported on first access (PEP 562). The
# modules are named unlike the verbs (extraction, fitting, projection, reporting,
# demo_run), so importing a module never replaces the function of the same name on
# this package.
_LAZY: dict[str, str] = {
    "extract": "featx.extraction",
    "ExtractConfig": "featx.extraction",
    "list_datasets": "featx.datasets",
    "fit": "featx.fitting",
    "FitConfig": "featx.fitting",
    "find_existing": "featx.fitting",
    "pca": "featx.projection",
    "list_classifiers": "featx.classifiers",
    "load_record": "featx.records",
    "load_model": "featx.records",
    "iter_records": "featx.records",
    "report": "featx.reporting",
    "load_pipeline": "featx.pipeline",
    "PipelineSpec": "featx.pipeline",
    "run_pipeline": "featx.runner",
    "demo": "featx.demo_run",
}

if TYPE_CHECKING:  # pragma: no cover
    from featx.classifiers import list_classifiers
    from featx.datasets import list_datasets
    from featx.demo_run import demo
    from featx.extraction import ExtractConfig, extract
    from featx.fitting import FitConfig, find_existing, fit
    from featx.pipeline import PipelineSpec, load_pipeline
    from featx.projection import pca
    from featx.records import iter_records, load_model, load_record
    from featx.reporting import report
    from featx.runner import run_pipeline

__all__ = ["FeatxError", "__version__", "load_features", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'featx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

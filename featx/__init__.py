"""featx: transfer learning without training.

Frozen pretrained timm backbones turn images into embeddings cached in HDF5; classical
scikit-learn classifiers are grid-searched on the cache; a report compares them, and
a pipeline file declares a whole comparison (``run_pipeline``, ``report``, ``demo``); a
fitted run labels new images (``load_predictor``) and exports to plain torch (``export_model``).

The public verbs are re-exported here, each imported when first used (PEP 562): ``import
featx`` costs nothing, stage two (``load_features``, ``fit``, ``pca``) never imports torch,
and only stage one (``extract``) does. Every verb takes its source, then a config of what
changes the numbers, then keyword-only folders and policy::

    featx.extract("cifar10", featx.ExtractConfig(backbone="resnet50"), device="cuda")
    featx.fit("resnet50", featx.FitConfig(clf="logreg"), n_jobs=4)
    featx.pca("resnet50", featx.PcaConfig(scale="l2"))

The layout of the package is described in ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from featx._version import __version__

# public name -> module that defines it. The subpackages are named unlike the verbs
# (extraction, fitting, reporting, runner), so importing one never replaces a verb.
_LAZY: dict[str, str] = {
    "FeatxError": "featx.core.errors",
    "ConfigError": "featx.core.errors",
    "load_features": "featx.cache.reader",
    "extract": "featx.extraction.engine",
    "ExtractConfig": "featx.extraction.config",
    "list_datasets": "featx.extraction.datasets",
    "fit": "featx.fitting.protocol",
    "FitConfig": "featx.fitting.config",
    "find_existing": "featx.fitting.protocol",
    "pca": "featx.fitting.projection",
    "PcaConfig": "featx.fitting.projection",
    "curve": "featx.fitting.curves",
    "CurveConfig": "featx.fitting.curves",
    "list_classifiers": "featx.fitting.classifiers",
    "load_record": "featx.fitting.records",
    "load_model": "featx.fitting.records",
    "iter_records": "featx.fitting.records",
    "report": "featx.reporting.render",
    "compare": "featx.reporting.frames",
    "list_backbones": "featx.extraction.catalog",
    "load_pipeline": "featx.runner.spec",
    "PipelineSpec": "featx.runner.spec",
    "run_pipeline": "featx.runner.pipeline",
    "demo": "featx.runner.demo_run",
    "load_predictor": "featx.deploy.predictor",
    "export_model": "featx.deploy.export",
}

if TYPE_CHECKING:  # pragma: no cover
    from featx.cache.reader import load_features
    from featx.core.errors import ConfigError, FeatxError
    from featx.deploy.export import export_model
    from featx.deploy.predictor import load_predictor
    from featx.extraction.catalog import list_backbones
    from featx.extraction.config import ExtractConfig
    from featx.extraction.datasets import list_datasets
    from featx.extraction.engine import extract
    from featx.fitting.classifiers import list_classifiers
    from featx.fitting.config import FitConfig
    from featx.fitting.curves import CurveConfig, curve
    from featx.fitting.projection import PcaConfig, pca
    from featx.fitting.protocol import find_existing, fit
    from featx.fitting.records import iter_records, load_model, load_record
    from featx.reporting.frames import compare
    from featx.reporting.render import report
    from featx.runner.demo_run import demo
    from featx.runner.pipeline import run_pipeline
    from featx.runner.spec import PipelineSpec, load_pipeline

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'featx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

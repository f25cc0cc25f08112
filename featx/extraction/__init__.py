"""Stage one: frozen timm backbones turn images into features in the cache.

It owns the extraction configs (:mod:`~featx.extraction.config`), backbones and their
weights (:mod:`~featx.extraction.backbones`, :mod:`~featx.extraction.weights`), the data
config and its geometry (:mod:`~featx.extraction.dataconfig`), devices and precisions
(:mod:`~featx.extraction.devices`), the data sets (:mod:`~featx.extraction.datasets`),
uint8 batches (:mod:`~featx.extraction.batches`), on-device preprocessing
(:mod:`~featx.extraction.preprocess`) and the engine that writes cache entries
(:mod:`~featx.extraction.engine`). This is the only stage that touches images and torch
(imported when a model is built, never to plan or to find a cache hit).

Import rule: stage one imports :mod:`featx.core` and :mod:`featx.cache`, never stage two,
the report, the runner or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featx.core.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "extract": "featx.extraction.engine",
        "extract_shard": "featx.extraction.engine",
        "extract_features": "featx.extraction.engine",
        "plan_extraction": "featx.extraction.engine",
        "ExtractConfig": "featx.extraction.config",
        "ExtractOptions": "featx.extraction.config",
        "ExtractRequest": "featx.extraction.config",
        "list_datasets": "featx.extraction.datasets",
        "load_dataset": "featx.extraction.datasets",
        "resolve_backbone": "featx.extraction.backbones",
        "resolve_data_config": "featx.extraction.backbones",
    },
)

if TYPE_CHECKING:  # pragma: no cover
    from featx.extraction.backbones import resolve_backbone, resolve_data_config
    from featx.extraction.config import ExtractConfig, ExtractOptions, ExtractRequest
    from featx.extraction.datasets import list_datasets, load_dataset
    from featx.extraction.engine import extract, extract_features, extract_shard, plan_extraction

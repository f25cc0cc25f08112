"""Stage two: classifiers grid-searched on cached features, run records, PCA plots.

It owns the fit config (:mod:`~featx.fitting.config`), the classifier registry
(:mod:`~featx.fitting.classifiers`), grid specs (:mod:`~featx.fitting.grids`), the exact
shared-work grid search (:mod:`~featx.fitting.search`) and its solvers
(:mod:`~featx.fitting.solvers`), held-out scores (:mod:`~featx.fitting.metrics`), the fit
protocol (:mod:`~featx.fitting.protocol`: CV on train, refit, one test score), run
records (:mod:`~featx.fitting.records`) and PCA plots (:mod:`~featx.fitting.projection`).
Stage two reads only HDF5 and never imports torch; its functions take arrays and configs
and return results, and never see a scheduler (folds run on whatever joblib backend is
active).

Import rule: stage two imports :mod:`featx.core` and :mod:`featx.cache`, never stage one,
the report, the runner or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featx.core.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "fit": "featx.fitting.protocol",
        "find_existing": "featx.fitting.protocol",
        "FitConfig": "featx.fitting.config",
        "pca": "featx.fitting.projection",
        "PcaConfig": "featx.fitting.projection",
        "list_classifiers": "featx.fitting.classifiers",
        "RunRecord": "featx.fitting.records",
        "load_record": "featx.fitting.records",
        "load_model": "featx.fitting.records",
        "iter_records": "featx.fitting.records",
    },
)

if TYPE_CHECKING:  # pragma: no cover
    from featx.fitting.classifiers import list_classifiers
    from featx.fitting.config import FitConfig
    from featx.fitting.projection import PcaConfig, pca
    from featx.fitting.protocol import find_existing, fit
    from featx.fitting.records import RunRecord, iter_records, load_model, load_record

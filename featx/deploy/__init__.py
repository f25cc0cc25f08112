"""Using what was learned: label new images with a fitted run, and export it for plain torch.

It owns finding a run (:mod:`~featx.deploy.runs`: a record file, a run key, or ``best``,
the best cell of the latest report), the predictor (:mod:`~featx.deploy.predictor`: the
run's backbone rebuilt with its exact weights and data config, stage one's code path for
new images, the run's saved Pipeline), and the export (:mod:`~featx.deploy.export`: one
TorchScript file and a JSON sidecar).

Import rule: it sits above the stages and the report and calls them; it imports
:mod:`featx.core`, :mod:`featx.cache`, stage one, stage two and the report, never the
runner, the Dask home or the CLI. torch stays in stage one: this package imports none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featx.core.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "resolve_run": "featx.deploy.runs",
        "ResolvedRun": "featx.deploy.runs",
        "load_predictor": "featx.deploy.predictor",
        "Predictor": "featx.deploy.predictor",
        "Predictions": "featx.deploy.predictor",
        "export_model": "featx.deploy.export",
        "ExportFiles": "featx.deploy.export",
    },
)

if TYPE_CHECKING:  # pragma: no cover
    from featx.deploy.export import ExportFiles, export_model
    from featx.deploy.predictor import Predictions, Predictor, load_predictor
    from featx.deploy.runs import ResolvedRun, resolve_run

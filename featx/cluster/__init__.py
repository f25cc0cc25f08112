"""The Dask home: featx on a cluster, driven from outside the stages.

It owns connecting to a scheduler and running joblib's fold work on its cluster
(:mod:`~featx.cluster.scheduler`), extractions as retried, sharded Dask tasks
(:mod:`~featx.cluster.tasks`), and an executor of the runner's task graph
(:mod:`~featx.cluster.executor`). The stages never receive a client: stage two's folds go
through joblib's Dask backend, extraction runs as tasks that call stage one's functions.
Without a scheduler nothing here runs and dask is never imported.

Import rule: the Dask home imports the runner, the stages, :mod:`featx.cache` and
:mod:`featx.core`; only the CLI imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featx.core.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "SCHEDULER_ENV": "featx.cluster.scheduler",
        "connect": "featx.cluster.scheduler",
        "scheduler_address": "featx.cluster.scheduler",
        "describe": "featx.cluster.scheduler",
        "cluster_summary": "featx.cluster.scheduler",
        "fold_work_on": "featx.cluster.scheduler",
        "extract_on_cluster": "featx.cluster.tasks",
        "submit_extract": "featx.cluster.tasks",
        "portable_request": "featx.cluster.tasks",
        "result_of": "featx.cluster.tasks",
        "results_as_completed": "featx.cluster.tasks",
        "pipeline_executor": "featx.cluster.executor",
    },
)

if TYPE_CHECKING:  # pragma: no cover
    from featx.cluster.executor import pipeline_executor
    from featx.cluster.scheduler import SCHEDULER_ENV, cluster_summary, connect, describe, fold_work_on, scheduler_address
    from featx.cluster.tasks import extract_on_cluster, portable_request, result_of, results_as_completed, submit_extract

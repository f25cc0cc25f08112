"""A pipeline on a Dask cluster: an executor of the runner's task graph.

:func:`pipeline_executor` is an ``executor(graph) -> {key: Outcome}`` for
:func:`featx.runner.pipeline.run_pipeline`: every task of the graph is submitted at once,
each waiting on the futures of its dependencies, so the extractions of different
backbones run concurrently and each backbone's fits and PCA plots start as soon as its
features exist. The tasks are the runner's own (:func:`featx.runner.graph.run_task` decides
every outcome, as in the serial executor); this module only says where they run:

* a fit runs its folds through joblib's Dask backend, as further tasks on the cluster
  (joblib leaves the worker's thread while it waits);
* with ``shards``, an extraction runs as shard tasks and a stitch task
  (:mod:`featx.cluster.tasks`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx.cluster.scheduler import cluster_summary, gpu_resources
from featx.cluster.tasks import TASK_RETRIES, absolute, portable_request, result_of, results_as_completed, submit_request, task_key
from featx.extraction.config import ExtractRequest
from featx.runner.graph import Outcome, Task, TaskGraph, TaskValue, log_outcome, run_task

if TYPE_CHECKING:  # dask is imported only when a scheduler is given
    from distributed import Client, Future

log = logging.getLogger(__name__)


def pipeline_executor(
    client: Client, *, shards: int | None = None, retries: int = TASK_RETRIES
) -> Callable[[TaskGraph], dict[str, Outcome]]:
    """An executor that carries out a pipeline's task graph on ``client``'s cluster.

    Example::

        with connect("local:4") as client:
            featx.run_pipeline(spec, executor=pipeline_executor(client, shards=4))

    Args:
        client: a connected ``distributed.Client``.
        shards: split each extraction into this many shard tasks.
        retries: retries of a task that raised something else than a featx error.

    Returns:
        ``executor(graph) -> {task key: Outcome}``. It raises SchedulerError when Dask
        gave up on a task (its workers kept dying); the other tasks are then cancelled.
    """

    def execute(graph: TaskGraph) -> dict[str, Outcome]:
        resources = gpu_resources(client) if not shards or shards == 1 else None
        futures: dict[str, Future] = {}
        tasks: dict[object, Task] = {}  # Dask key -> task
        for task in graph.tasks:
            future = client.submit(
                _run_on_worker,
                _portable_task(task),
                shards,
                *(futures[d] for d in task.deps),
                key=task_key(task.kind, task.key.partition(":")[2]),
                retries=retries,
                pure=False,
                resources=resources if task.kind == "extract" else None,
            )
            futures[task.key], tasks[future.key] = future, task
        outcomes: dict[str, Outcome] = {}
        for future, outcome in results_as_completed(futures.values()):
            outcomes[outcome.key] = outcome
            log_outcome(tasks[future.key], outcome)
        return outcomes

    return execute


def _portable_task(task: Task) -> Task:
    """The task with its paths made absolute, for workers with another working directory."""
    if task.kind == "extract":
        (request,) = task.args
        return dataclasses.replace(task, args=(portable_request(request),))
    *leading, cache_dir, reports_dir = task.args  # fit and pca tasks end with (..., cache_dir, reports_dir)
    return dataclasses.replace(task, args=(*leading, str(absolute(Path(cache_dir))), str(absolute(Path(reports_dir)))))


def _run_on_worker(task: Task, shards: int | None, *deps: Outcome) -> Outcome:
    """Runs on a worker: the runner's :func:`~featx.runner.graph.run_task`, with a fit's
    folds as further tasks (joblib's Dask backend) and a sharded extraction as shard tasks."""
    if task.kind == "fit":
        task = dataclasses.replace(task, func=_fit_with_folds_on_the_cluster)
    elif task.kind == "extract" and shards and shards > 1:
        task = dataclasses.replace(task, func=_sharded_extract_task, args=(*task.args, shards))
    return run_task(task, *deps)


def _fit_with_folds_on_the_cluster(*args: Any) -> TaskValue:
    """Runs on a worker: the runner's fit task, its folds through joblib's Dask backend
    (the worker's own client; joblib secedes from the worker's thread pool while it waits)."""
    from distributed import get_client
    from joblib import parallel_config

    from featx.runner.pipeline import fit_task

    client = get_client()
    with parallel_config(backend="dask", client=client):
        return fit_task(*args, environment={"dask": cluster_summary(client)})


def _sharded_extract_task(request: ExtractRequest, shards: int) -> TaskValue:
    """Runs on a worker: a cache hit, or the extraction as shard tasks and a stitch task."""
    from distributed import worker_client

    from featx.extraction.engine import is_cache_hit, plan_request

    plan = plan_request(request)
    if is_cache_hit(plan):
        return TaskValue(plan.path, True)
    with worker_client() as client:
        final, _ = submit_request(client, request, shards=shards)
        return TaskValue(result_of(final), False)

"""featx on a Dask cluster: connecting to a scheduler, and featx's work as Dask tasks.

Scheduler addresses (``--scheduler ADDRESS`` or the environment variable
``FEATX_SCHEDULER``):

* ``tcp://head:8786`` (or any address ``distributed.Client`` takes: ``tls://...``,
  ``host:port``): an existing cluster, started with ``dask scheduler`` and
  ``dask worker tcp://head:8786``. featx never starts or stops it.
* ``local:N``: a ``LocalCluster`` of N worker processes with one thread each, bound to
  127.0.0.1 with no dashboard, started for the command and closed after it; ``local``
  takes one worker per core.
* ``PATH.json``: a scheduler file (``dask scheduler --scheduler-file PATH``, dask-mpi,
  dask-jobqueue), the usual handle on HPC systems.

What runs where:

* ``featx fit --scheduler``: the grid search's folds are tasks; the features are
  scattered to the cluster once per run (workers fetch them once each), never per task;
  the refit of the best grid point is one more task. The results are the local run's,
  to the last bit (the same code on the same folds, BLAS single-threaded in both).
* ``featx extract --scheduler``: the extraction is one task on a worker (a GPU worker
  when workers advertise a ``GPU`` resource); with ``--shards N``, N shard tasks and a
  stitch task (:mod:`featx.cache.shards`). Workers write the cache files themselves, so the
  cache folder must be on a filesystem every worker shares, at the same path.
* :func:`submit_extract`, :func:`submit_fit` and :func:`submit_pca` return futures, so
  that a pipeline runner can put many extractions and fits on the cluster at once (a
  fit can take an extraction's future as its features).

Failures: Dask reschedules the task of a worker that died (up to its
``distributed.scheduler.allowed-failures``); an extraction, fit or PCA task that raises
something other than a featx error (a transient I/O or device error) is retried
(:data:`TASK_RETRIES`); a featx error (bad input: a missing data set, an unreadable
image) would fail the same way again, so it is raised at once, as itself, by the
future's ``result()``. Fold and refit tasks are pure computations on data already on
the cluster and are not retried. Every file is written crash-safely, so a retried or
rescheduled task resumes or redoes its own file and no half-written cache file is ever
trusted.

This module imports dask only inside its functions, and featx calls them only when a
scheduler is given: without one, nothing imports dask.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx._version import __version__
from featx.core import paths
from featx.core.errors import ConfigError, FeatxError, SchedulerError
from featx.core.paths import safe_name

if TYPE_CHECKING:  # dask is imported only when a scheduler is given
    from distributed import Client, Future

    from featx.extraction.engine import ExtractConfig
    from featx.fitting.protocol import FitConfig
    from featx.fitting.records import RunRecord
    from featx.runner.pipeline import Outcome, Task, TaskGraph, TaskValue

log = logging.getLogger(__name__)

SCHEDULER_ENV = "FEATX_SCHEDULER"
#: seconds to reach a scheduler before giving up with a SchedulerError
CONNECT_TIMEOUT = 5.0
#: seconds to wait for a first worker when the scheduler has none
WORKER_TIMEOUT = 30.0
#: retries of an extraction, fit or PCA task that raised something else than a featx
#: error (a dead worker's task is rescheduled by Dask itself, up to its
#: ``distributed.scheduler.allowed-failures``, 3 by default)
TASK_RETRIES = 2
LOCAL_HOST = "127.0.0.1"
GPU_RESOURCE = "GPU"


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class SchedulerAddress:
    """A parsed ``--scheduler`` value.

    Attributes:
        text: the address as given.
        local_workers: worker processes of a LocalCluster to start (``local:N``), else None.
        scheduler_file: a scheduler file to read the address from, else None.
    """

    text: str
    local_workers: int | None = None
    scheduler_file: Path | None = None

    @classmethod
    def parse(cls, text: str) -> SchedulerAddress:
        """``"local:4"``, ``"local"``, ``"tcp://head:8786"``, ``"head:8786"`` or ``"scheduler.json"``.

        Raises:
            ConfigError: an empty address, or ``local:N`` with N not a positive number.
        """
        value = str(text).strip()
        if not value:
            raise ConfigError("--scheduler is empty; give tcp://HOST:PORT, local:N or a scheduler file")
        kind, sep, count = value.partition(":")
        if kind == "local":
            if not sep:
                return cls(value, local_workers=_cores())
            if not count.isdigit() or int(count) < 1:
                raise ConfigError(f"--scheduler {value!r}: use local:N with N >= 1 worker processes, e.g. local:4")
            return cls(value, local_workers=int(count))
        if value.endswith(".json"):
            return cls(value, scheduler_file=Path(value).expanduser())
        return cls(value)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def scheduler_address(explicit: str | None = None) -> str | None:
    """The scheduler to use: ``explicit``, else ``FEATX_SCHEDULER``, else None (run here)."""
    if explicit:
        return explicit
    return os.environ.get(SCHEDULER_ENV) or None


# --------------------------------------------------------------------------- connecting


@contextlib.contextmanager
def connect(address: str | None, *, timeout: float = CONNECT_TIMEOUT, worker_timeout: float = WORKER_TIMEOUT) -> Iterator[Client | None]:
    """Connect to a Dask scheduler for the duration of a block.

    Example::

        with connect("local:2") as client:
            featx.fit("resnet50", clf="logreg", client=client)

    Args:
        address: see the module docstring; None reads ``FEATX_SCHEDULER`` and, when that
            is unset too, yields None without importing dask.
        timeout: seconds to reach the scheduler.
        worker_timeout: seconds to wait for a first worker when there is none.

    Yields:
        A ``distributed.Client`` (closed afterwards, with the LocalCluster of
        ``local:N``), or None.

    Raises:
        SchedulerError: dask is not installed; the scheduler cannot be reached within
            ``timeout`` (the message names the address); no worker joined; or the
            workers cannot run this featx.
        ConfigError: a malformed address.
    """
    address = scheduler_address(address)
    if address is None:
        yield None
        return
    parsed = SchedulerAddress.parse(address)
    distributed = _import_distributed()
    with contextlib.ExitStack() as stack:
        if parsed.local_workers is not None:
            stack.enter_context(_environment_restored())
            cluster = stack.enter_context(_local_cluster(parsed.local_workers))
            client = stack.enter_context(distributed.Client(cluster, timeout=timeout))
        else:
            client = stack.enter_context(_remote_client(parsed, timeout=timeout))
        _check_workers(client, parsed.text, worker_timeout=worker_timeout)
        log.info("using the Dask cluster at %s", describe(client))
        yield client


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise SchedulerError("--scheduler needs Dask: pip install 'featx[dask]'") from None
    return distributed


@contextlib.contextmanager
def _environment_restored() -> Iterator[None]:
    """Undo what a LocalCluster's nannies write into this process's environment
    (``OMP_NUM_THREADS=1`` and the like, meant for the workers they spawn), so that
    processes started after the cluster is closed get the user's settings back."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _local_cluster(n_workers: int) -> Any:
    from distributed import LocalCluster

    log.info("starting a local Dask cluster: %d worker process(es) on %s", n_workers, LOCAL_HOST)
    try:
        return LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1, host=LOCAL_HOST, dashboard_address=f"{LOCAL_HOST}:0",
                            silence_logs=logging.ERROR)
    except Exception as error:  # ports, spawn failures: one line for the user
        raise SchedulerError(f"cannot start a local Dask cluster of {n_workers} worker(s): {error}") from error


def _remote_client(parsed: SchedulerAddress, *, timeout: float) -> Any:
    from distributed import Client

    try:
        if parsed.scheduler_file is not None:
            if not parsed.scheduler_file.is_file():
                raise SchedulerError(f"scheduler file not found: {parsed.scheduler_file}")
            return Client(scheduler_file=str(parsed.scheduler_file), timeout=timeout)
        return Client(parsed.text, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {parsed.text} within {timeout:g} s ({reason}); "
            f"start one (`dask scheduler`, then `dask worker ADDRESS`), check --scheduler / {SCHEDULER_ENV}, or use local:N"
        ) from None


def _check_workers(client: Client, address: str, *, worker_timeout: float) -> None:
    """At least one worker, and every worker runs this featx version."""
    if not client.scheduler_info(n_workers=1)["workers"]:
        log.info("waiting up to %g s for a Dask worker to join %s", worker_timeout, address)
        try:
            client.wait_for_workers(1, timeout=worker_timeout)
        except TimeoutError:
            raise SchedulerError(f"the Dask scheduler at {address} has no workers (waited {worker_timeout:g} s); start some with `dask worker {address}`") from None
    try:
        versions = client.run(_featx_version)
    except Exception as error:  # a worker that cannot import featx cannot unpickle the function
        raise SchedulerError(f"the Dask workers of {address} cannot run featx ({type(error).__name__}: {error}); install featx (pip install 'featx[dask]') on every worker") from None
    other = {worker: version for worker, version in versions.items() if version != __version__}
    if other:
        listed = ", ".join(f"{worker} has {version}" for worker, version in sorted(other.items()))
        raise SchedulerError(f"Dask workers run another featx version than this one ({__version__}): {listed}; install the same version everywhere")


def _featx_version() -> str:
    """Runs on each worker: the featx version it imports."""
    return __version__


def describe(client: Client) -> str:
    """``"tcp://127.0.0.1:40123 (2 workers, 2 threads)"``."""
    summary = cluster_summary(client)
    return f"{summary['scheduler']} ({summary['workers']} worker{'s' if summary['workers'] != 1 else ''}, {summary['threads']} thread{'s' if summary['threads'] != 1 else ''})"


def cluster_summary(client: Client) -> dict[str, Any]:
    """Scheduler address, workers, threads, GPU workers and the dask version, for records."""
    import distributed

    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return {
        "scheduler": client.scheduler.address,
        "workers": len(workers),
        "threads": sum(int(w.get("nthreads", 0)) for w in workers),
        "gpu_workers": sum(1 for w in workers if w.get("resources", {}).get(GPU_RESOURCE)),
        "distributed": distributed.__version__,
    }


def gpu_resources(client: Client) -> dict[str, float] | None:
    """``{"GPU": 1}`` when any worker advertises a GPU resource (``dask worker ...
    --resources GPU=1``), so that extraction tasks go to GPU workers only; else None."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return {GPU_RESOURCE: 1} if any(w.get("resources", {}).get(GPU_RESOURCE) for w in workers) else None


# --------------------------------------------------------------------------- data and tasks


def share(client: Client, *arrays: Any) -> list[Future]:
    """Scatter arrays to the cluster once, for any number of tasks to use.

    Each array goes to one worker and is copied to a second one (when there are two),
    so that one worker's death does not lose it; other workers fetch it once, when they
    first run a task that needs it. Identical arrays share one key (``hash=True``), so
    concurrent fits on the same features share one copy.

    Returns:
        One future per array, to pass to ``client.submit`` in place of the array.
    """
    futures = client.scatter(list(arrays), hash=True)
    if len(client.scheduler_info(n_workers=2)["workers"]) > 1:
        client.replicate(futures, n=2)
    return list(futures)



def task_key(kind: str, name: str = "") -> str:
    """A readable, unique task key: ``featx-fold-resnet50-1a2b3c4d`` (shown by the dashboard)."""
    label = f"-{safe_name(name)}" if name else ""
    return f"featx-{kind}{label}-{uuid.uuid4().hex[:8]}"


def result_of(future: Future) -> Any:
    """A task's result; a featx error raised in the task is raised here as it was.

    Raises:
        SchedulerError: the task's workers kept dying (``KilledWorker``) or it was
            cancelled (scheduler restarted, connection lost).
    """
    from distributed.scheduler import KilledWorker

    try:
        return future.result()
    except KilledWorker as error:
        raise SchedulerError(
            f"Dask gave up on task {future.key}: the workers running it died too often ({error}); "
            "see the worker logs (out of memory? killed?); rows written so far are kept and a rerun resumes them"
        ) from None
    except Exception as error:
        if type(error).__name__ in ("CancelledError", "FutureCancelledError"):
            raise SchedulerError(f"Dask task {future.key} was cancelled (the scheduler restarted or the connection was lost); run the command again") from None
        raise


def results_as_completed(futures: Iterable[Future]) -> Iterator[tuple[Future, Any]]:
    """Yield ``(future, result)`` for already-submitted tasks as they complete; on a
    failure, cancel the others and raise (see :func:`result_of`).

    Example (a runner waiting for its cells)::

        cells = {submit_fit(client, features, config): name for name, config in configs.items()}
        for future, record in results_as_completed(cells):
            print(cells[future], record.test_accuracy)
    """
    from distributed import as_completed

    pending = list(futures)
    try:
        for future in as_completed(pending):
            yield future, result_of(future)
    finally:
        _cancel(pending)


def run_tasks(submit: Callable[[int], Future], count: int, *, limit: int | None = None) -> Iterator[Any]:
    """Submit tasks ``submit(0) .. submit(count - 1)``, at most ``limit`` in flight (None:
    all at once), and yield their results as they complete.

    Raises:
        SchedulerError, or the task's own error: see :func:`result_of`; the tasks not
        finished are cancelled.
    """
    from distributed import as_completed

    waiting = iter(range(count))
    started = [submit(index) for index in itertools.islice(waiting, limit if limit and limit > 0 else count)]
    queue = as_completed(started)
    try:
        for future in queue:
            result = result_of(future)
            following = next(waiting, None)
            if following is not None:
                started.append(submit(following))
                queue.add(started[-1])
            yield result
    finally:
        _cancel(started)


@dataclass(frozen=True)
class _Outcome:
    """What a retried task returns: its value, or the featx error it raised."""

    value: Any = None
    error: FeatxError | None = None


def _attempt(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> _Outcome:
    """Runs on a worker: ``func`` with a featx error returned (not raised, so that Dask does
    not retry it: bad input fails the same way again); anything else raises and is retried."""
    try:
        return _Outcome(value=func(*args, **kwargs))
    except FeatxError as error:
        return _Outcome(error=error)


def _unwrap(outcome: _Outcome) -> Any:
    """Runs on a worker: an outcome's value, or its featx error raised."""
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def submit_retried(client: Client, func: Callable[..., Any], /, *args: Any, key: str, retries: int = TASK_RETRIES,
                   resources: dict[str, float] | None = None, **kwargs: Any) -> Future:
    """Submit ``func(*args, **kwargs)`` as a task retried on transient errors only.

    Two tasks: the attempt (retried ``retries`` times when it raises anything but a
    :class:`~featx.core.errors.FeatxError`, on the ``resources`` asked for) and a tiny one
    that returns its value or raises its featx error, so that the future behaves like
    ``func``: ``future.result()`` returns what ``func`` returns or raises its error, and
    tasks depending on the future get the value.

    Returns:
        The future of ``func``'s result.
    """
    attempt = _submit_attempt(client, func, *args, key=key, retries=retries, resources=resources, **kwargs)
    return client.submit(_unwrap, attempt, key=key, pure=False)


def _submit_attempt(client: Client, func: Callable[..., Any], /, *args: Any, key: str, retries: int,
                    resources: dict[str, float] | None, **kwargs: Any) -> Future:
    return client.submit(_attempt, func, *args, key=f"{key}-attempt", resources=resources, retries=retries, pure=False, **kwargs)


def _cancel(futures: list[Future]) -> None:
    unfinished = [future for future in futures if not future.done()]
    if unfinished:
        with contextlib.suppress(Exception):
            unfinished[0].client.cancel(unfinished)


# --------------------------------------------------------------------------- featx's verbs as tasks


def portable_config(config: ExtractConfig) -> ExtractConfig:
    """The config with every path absolute (cache, data, weights file, image folder), so
    that a worker with another working directory and environment reads and writes the
    same files (on a shared filesystem) and plans the same cache key."""
    from featx.extraction.datasets import parse_spec

    kind, argument = parse_spec(config.dataset)
    changes: dict[str, Any] = {
        "cache_dir": str(_absolute(paths.cache_dir(config.cache_dir))),
        "data_dir": str(_absolute(paths.data_dir(config.data_dir))),
    }
    if argument is not None:
        changes["dataset"] = f"{kind}:{_absolute(Path(argument))}"
    if str(config.weights) not in ("pretrained", "random"):
        changes["weights"] = str(_absolute(Path(config.weights)))
    return dataclasses.replace(config, **changes)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def _portable_features(features: Any) -> Any:
    """An .h5 path made absolute; a backbone name or a future as it is."""
    if isinstance(features, (str, os.PathLike)):
        candidate = Path(features).expanduser()
        if candidate.suffix == ".h5" or candidate.exists():
            return str(_absolute(candidate))
    return features


def submit_extract(client: Client, config: ExtractConfig, *, shards: int | None = None, retries: int = TASK_RETRIES) -> Future:
    """Put an extraction on the cluster; the future's result is the cache entry's ``Path``.

    Without ``shards`` (or with 1) one task runs :func:`featx.extract` on a worker; with
    ``shards=N``, N tasks run :func:`featx.extraction.engine.extract_shard` (one contiguous block
    of rows each) and a last task stitches them (:func:`featx.cache.shards.stitch_results`).
    Extraction tasks ask for a ``GPU`` resource when workers advertise one. A cache hit
    computes nothing (each task finds the entry and returns).

    Args:
        client: a connected ``distributed.Client`` (see :func:`connect`).
        config: the extraction; its paths are made absolute (:func:`portable_config`).
        shards: split every split's rows into this many shards.
        retries: retries of a task that raised something else than a featx error.

    Returns:
        A ``distributed.Future`` of the entry's ``Path``; ``future.result()`` raises the
        extraction's featx error, if any (:func:`result_of` also turns Dask's giving up
        on a task into a SchedulerError).
    """
    final, _ = _submit_extract(client, config, shards=shards, retries=retries)
    return final


def extract_on_cluster(client: Client, config: ExtractConfig, *, shards: int | None = None, retries: int = TASK_RETRIES) -> Path:
    """Run an extraction on the cluster and wait for it, with a progress bar over shards.

    Args: see :func:`submit_extract`.

    Returns:
        The cache entry's path.

    Raises:
        FeatxError: as :func:`featx.extract`, as soon as any shard raises it.
        SchedulerError: Dask gave up on a task (its workers kept dying).
    """
    from featx.core.console import progress

    final, attempts = _submit_extract(client, config, shards=shards, retries=retries)
    if attempts:
        with progress(total=len(attempts), desc=f"{config.backbone} shards", unit="shard") as bar:
            for _, outcome in results_as_completed(attempts):
                result = _unwrap(outcome)
                log.info("shard %s of %s: %s", result.shard, result.final.name, "computed" if result.computed else "found complete")
                bar.update(1)
    path: Path = result_of(final)
    return path


def _submit_extract(client: Client, config: ExtractConfig, *, shards: int | None, retries: int) -> tuple[Future, list[Future]]:
    """The future of the entry, and those of the shard attempts (none without shards)."""
    from featx.cache.shards import ShardSpec
    from featx.extraction.engine import extract, extract_shard

    config = portable_config(config)
    resources = gpu_resources(client)
    if shards is None or shards == 1:
        return submit_retried(client, extract, config, key=task_key("extract", config.backbone), retries=retries, resources=resources), []
    attempts = [
        _submit_attempt(client, extract_shard, config, spec, stitch=False, key=task_key(f"shard-{spec.index}-of-{spec.count}", config.backbone),
                        retries=retries, resources=resources)
        for spec in (ShardSpec(index, shards) for index in range(shards))
    ]
    final = client.submit(_stitch_outcomes, attempts, key=task_key("stitch", config.backbone), retries=retries, pure=False)
    return final, attempts


def _stitch_outcomes(outcomes: list[_Outcome]) -> Path:
    """Runs on a worker once every shard task is done: raise a shard's featx error, else stitch."""
    from featx.cache.shards import stitch_results

    return stitch_results([_unwrap(outcome) for outcome in outcomes])


def submit_fit(
    client: Client,
    features: str | os.PathLike[str] | Future,
    config: FitConfig,
    *,
    dataset: str | None = "cifar10",
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    skip_existing: bool = False,
    retries: int = TASK_RETRIES,
) -> Future:
    """Put a whole :func:`featx.fit` on the cluster; the future's result is its ``RunRecord``.

    The fit runs in a task on a worker that reads the features from the (shared) cache,
    scatters them once, runs its folds and refit as further tasks (it leaves its worker
    thread free while it waits), and writes the record and model under ``reports_dir``
    (made absolute; it must be shared with the workers).

    Args:
        client: a connected ``distributed.Client``.
        features: an .h5 path, a backbone name, or the future of :func:`submit_extract`
            (the fit then starts when the extraction is done).
        config: the :class:`~featx.fitting.protocol.FitConfig`.
        dataset, cache_dir, reports_dir, skip_existing: as :func:`featx.fit`.
        retries: retries of the fit task when it raised something else than a featx error.

    Returns:
        A ``distributed.Future`` of the :class:`~featx.fitting.records.RunRecord`.
    """
    return submit_retried(
        client, _fit_task, _portable_features(features), config, dataset=dataset,
        cache_dir=str(_absolute(paths.cache_dir(cache_dir))), reports_dir=str(_absolute(paths.reports_dir(reports_dir))),
        skip_existing=skip_existing, key=task_key(f"fit-{config.clf}"), retries=retries,
    )


def _fit_task(features: str | os.PathLike[str], config: FitConfig, **options: Any) -> RunRecord:
    """Runs on a worker: ``featx.fit`` with this worker's client, seceded from the
    worker's thread pool so that its folds can use the thread while it waits."""
    from distributed import worker_client

    from featx.fitting.protocol import fit

    with worker_client() as client:
        return fit(features, config, client=client, **options)


def submit_pca(
    client: Client,
    features: str | os.PathLike[str] | Future,
    *,
    dataset: str | None = "cifar10",
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    retries: int = TASK_RETRIES,
    **options: Any,
) -> Future:
    """Put :func:`featx.pca` on the cluster; the future's result is its ``PcaResult``.

    Args:
        client: a connected ``distributed.Client``.
        features: an .h5 path, a backbone name, or the future of :func:`submit_extract`.
        dataset, cache_dir, reports_dir, **options: as :func:`featx.pca` (``scale``,
            ``per_class``, ``seed``); the plots are written under ``reports_dir``.
        retries: retries of the task when it raised something else than a featx error.

    Returns:
        A ``distributed.Future`` of the :class:`~featx.fitting.projection.PcaResult`.
    """
    from featx.fitting.projection import pca

    return submit_retried(
        client, pca, _portable_features(features), dataset=dataset, cache_dir=str(_absolute(paths.cache_dir(cache_dir))),
        reports_dir=str(_absolute(paths.reports_dir(reports_dir))), key=task_key("pca"), retries=retries, **options,
    )


# --------------------------------------------------------------------------- a pipeline on the cluster


def pipeline_executor(client: Client, *, shards: int | None = None, retries: int = TASK_RETRIES) -> Callable[[TaskGraph], dict[str, Outcome]]:
    """An executor for :func:`featx.runner.pipeline.run_pipeline` that carries out the task graph on
    a Dask cluster: every task is submitted at once, each waiting on the futures of its
    dependencies, so the extractions of different backbones run concurrently and each
    backbone's fits and PCA plots start as soon as its features exist.

    Example::

        with connect("local:4") as client:
            featx.run_pipeline(spec, executor=pipeline_executor(client, shards=4))

    A fit task runs its folds as further tasks on the cluster (it leaves its worker's
    thread while it waits); with ``shards``, an extraction task runs its shards as
    tasks. Outcomes are decided by :func:`featx.runner.pipeline.run_task`, as in the serial
    executor: a featx error fails its task and skips its dependants, the rest runs.

    Args:
        client: a connected ``distributed.Client``.
        shards: split each extraction into this many shard tasks (see :func:`submit_extract`).
        retries: retries of a task that raised something else than a featx error.

    Returns:
        ``executor(graph) -> {task key: Outcome}``.

    Raises (from the executor):
        SchedulerError: Dask gave up on a task (its workers kept dying); the other tasks
            are cancelled.
    """
    from featx.runner.pipeline import log_outcome

    def execute(graph: TaskGraph) -> dict[str, Outcome]:
        resources = gpu_resources(client) if not shards or shards == 1 else None
        futures: dict[str, Future] = {}
        tasks: dict[str, Task] = {}  # Dask key -> task
        for task in graph.tasks:
            future = client.submit(
                _run_on_worker, _portable_task(task), shards, *(futures[d] for d in task.deps),
                key=task_key(task.kind, task.key.partition(":")[2]), retries=retries, pure=False,
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
        (config,) = task.args
        return dataclasses.replace(task, args=(portable_config(config),))
    *leading, cache_dir, reports_dir = task.args  # fit and pca tasks end with (..., cache_dir, reports_dir)
    return dataclasses.replace(task, args=(*leading, str(_absolute(Path(cache_dir))), str(_absolute(Path(reports_dir)))))


def _run_on_worker(task: Task, shards: int | None, *deps: Outcome) -> Outcome:
    """Runs on a worker: :func:`featx.runner.pipeline.run_task`, with fits and sharded extractions
    submitting their own tasks through this worker's client."""
    from featx.runner.pipeline import run_task

    if task.kind == "fit":
        task = dataclasses.replace(task, func=_fit_with_worker_client)
    elif task.kind == "extract" and shards and shards > 1:
        task = dataclasses.replace(task, func=_sharded_extract_task, args=(*task.args, shards))
    return run_task(task, *deps)


def _fit_with_worker_client(*args: Any) -> TaskValue:
    from distributed import worker_client

    from featx.runner.pipeline import fit_task

    with worker_client() as client:
        return fit_task(*args, client=client)


def _sharded_extract_task(config: ExtractConfig, shards: int) -> TaskValue:
    """Runs on a worker: a cache hit, or the extraction as shard tasks and a stitch task."""
    from distributed import worker_client

    from featx.extraction.engine import is_cache_hit, plan_extraction
    from featx.runner.pipeline import TaskValue

    plan = plan_extraction(config)
    if is_cache_hit(plan):
        return TaskValue(plan.path, True)
    with worker_client() as client:
        return TaskValue(result_of(submit_extract(client, config, shards=shards)), False)

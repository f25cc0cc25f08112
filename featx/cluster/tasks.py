"""featx's extractions as Dask tasks: retried on transient errors, sharded, stitched.

What runs where:

* :func:`extract_on_cluster` / :func:`submit_extract`: the extraction is one task on a
  worker (a GPU worker when workers advertise a ``GPU`` resource); with ``shards=N``, N
  shard tasks and a stitch task (:mod:`featx.cache.shards`). Workers write the cache
  files themselves, so the cache folder must be on a filesystem every worker shares, at
  the same path: every path in a request is made absolute first (:func:`portable_request`).

Failures: Dask reschedules the task of a worker that died (up to its
``distributed.scheduler.allowed-failures``); a task that raises something other than a
featx error (a transient I/O or device error) is retried (:data:`TASK_RETRIES`); a featx
error (bad input: a missing data set, an unreadable image) would fail the same way
again, so it is raised at once, as itself, by the future's ``result()``. Every file is
written crash-safely, so a retried or rescheduled task resumes or redoes its own file
and no half-written cache file is ever trusted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx.cluster.scheduler import gpu_resources
from featx.core import paths
from featx.core.errors import FeatxError, SchedulerError
from featx.core.paths import safe_name
from featx.extraction.config import ExtractConfig, ExtractRequest

if TYPE_CHECKING:  # dask is imported only when a scheduler is given
    from distributed import Client, Future

log = logging.getLogger(__name__)

#: retries of a task that raised something else than a featx error (a dead worker's task
#: is rescheduled by Dask itself, up to its ``distributed.scheduler.allowed-failures``)
TASK_RETRIES = 2


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
            raise SchedulerError(
                f"Dask task {future.key} was cancelled (the scheduler restarted or the connection was lost); run the command again"
            ) from None
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


def submit_retried(
    client: Client,
    func: Callable[..., Any],
    /,
    *args: Any,
    key: str,
    retries: int = TASK_RETRIES,
    resources: dict[str, float] | None = None,
    **kwargs: Any,
) -> Future:
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


def _submit_attempt(
    client: Client, func: Callable[..., Any], /, *args: Any, key: str, retries: int, resources: dict[str, float] | None, **kwargs: Any
) -> Future:
    return client.submit(_attempt, func, *args, key=f"{key}-attempt", resources=resources, retries=retries, pure=False, **kwargs)


def _cancel(futures: list[Future]) -> None:
    unfinished = [future for future in futures if not future.done()]
    if unfinished:
        with contextlib.suppress(Exception):
            unfinished[0].client.cancel(unfinished)


# --------------------------------------------------------------------------- extraction


def portable_request(request: ExtractRequest) -> ExtractRequest:
    """The request with every path absolute (cache, data, weights file, image folder), so
    that a worker with another working directory and environment reads and writes the
    same files (on a shared filesystem) and plans the same cache key."""
    from featx.extraction.datasets import parse_spec

    kind, argument = parse_spec(request.dataset)
    options = request.options.replace(
        cache_dir=str(absolute(paths.cache_dir(request.options.cache_dir))),
        data_dir=str(absolute(paths.data_dir(request.options.data_dir))),
    )
    config = request.config
    if config.weights not in ("pretrained", "random"):
        config = config.replace(weights=str(absolute(Path(config.weights))))
    dataset = f"{kind}:{absolute(Path(argument))}" if argument is not None else request.dataset
    return request.replace(dataset=dataset, config=config, options=options)


def absolute(path: Path) -> Path:
    """``path`` with ``~`` expanded, made absolute against this process's working directory."""
    return Path(os.path.abspath(path.expanduser()))


def submit_extract(
    client: Client, dataset: str, config: ExtractConfig, *, shards: int | None = None, retries: int = TASK_RETRIES, **options: Any
) -> Future:
    """Put an extraction on the cluster; the future's result is the cache entry's ``Path``.

    Without ``shards`` (or with 1) one task extracts on a worker; with ``shards=N``, N
    tasks compute one contiguous block of rows each
    (:func:`featx.extraction.engine.shard_request`) and a last task stitches them
    (:func:`featx.cache.shards.stitch_results`). Extraction tasks ask for a ``GPU``
    resource when workers advertise one. A cache hit computes nothing.

    Args:
        client: a connected ``distributed.Client`` (see :func:`featx.cluster.scheduler`).
        dataset, config, **options: as :func:`featx.extract`; paths are made absolute.
        shards: split every split's rows into this many shards.
        retries: retries of a task that raised something else than a featx error.

    Returns:
        A ``distributed.Future`` of the entry's ``Path``; ``future.result()`` raises the
        extraction's featx error, if any (:func:`result_of` also turns Dask's giving up
        on a task into a SchedulerError).
    """
    final, _ = submit_request(client, ExtractRequest.build(dataset, config, options, {}), shards=shards, retries=retries)
    return final


def extract_on_cluster(
    client: Client, dataset: str, config: ExtractConfig, *, shards: int | None = None, retries: int = TASK_RETRIES, **options: Any
) -> Path:
    """Run an extraction on the cluster and wait for it, with a progress bar over shards.

    Args: see :func:`submit_extract`.

    Returns:
        The cache entry's path.

    Raises:
        FeatxError: as :func:`featx.extract`, as soon as any shard raises it.
        SchedulerError: Dask gave up on a task (its workers kept dying).
    """
    from featx.core.console import progress

    final, attempts = submit_request(client, ExtractRequest.build(dataset, config, options, {}), shards=shards, retries=retries)
    if attempts:
        with progress(total=len(attempts), desc=f"{config.backbone} shards", unit="shard") as bar:
            for _, outcome in results_as_completed(attempts):
                result = _unwrap(outcome)
                log.info("shard %s of %s: %s", result.shard, result.final.name, "computed" if result.computed else "found complete")
                bar.update(1)
    path: Path = result_of(final)
    return path


def submit_request(
    client: Client, request: ExtractRequest, *, shards: int | None, retries: int = TASK_RETRIES
) -> tuple[Future, list[Future]]:
    """The future of the entry of ``request``, and those of its shard attempts (none without shards)."""
    from featx.cache.shards import ShardSpec
    from featx.extraction.engine import shard_request

    request = portable_request(request)
    backbone = request.config.backbone
    resources = gpu_resources(client)
    if shards is None or shards == 1:
        return submit_retried(client, _extract_path, request, key=task_key("extract", backbone), retries=retries, resources=resources), []
    attempts = [
        _submit_attempt(
            client,
            shard_request,
            request,
            spec,
            stitch=False,
            key=task_key(f"shard-{spec.index}-of-{spec.count}", backbone),
            retries=retries,
            resources=resources,
        )
        for spec in (ShardSpec(index, shards) for index in range(shards))
    ]
    final = client.submit(_stitch_outcomes, attempts, key=task_key("stitch", backbone), retries=retries, pure=False)
    return final, attempts


def _extract_path(request: ExtractRequest) -> Path:
    """Runs on a worker: the extraction; its entry's path."""
    from featx.extraction.engine import extract_request

    return extract_request(request)[0]


def _stitch_outcomes(outcomes: list[_Outcome]) -> Path:
    """Runs on a worker once every shard task is done: raise a shard's featx error, else stitch."""
    from featx.cache.shards import stitch_results

    return stitch_results([_unwrap(outcome) for outcome in outcomes])

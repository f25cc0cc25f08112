"""Connecting to a Dask scheduler, and running fold work on its cluster through joblib.

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

Stage two never sees a client: :func:`fold_work_on` makes joblib's ``dask`` backend the
active one, and the grid search's folds (joblib jobs) become tasks on the cluster, with
the feature matrix sent to it once per search. This module imports dask only inside its
functions, and featx calls them only when a scheduler is given: without one, nothing
imports dask.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx._version import __version__
from featx.core.console import quote, shorten
from featx.core.errors import ConfigError, SchedulerError

if TYPE_CHECKING:  # dask is imported only when a scheduler is given
    from distributed import Client

log = logging.getLogger(__name__)

SCHEDULER_ENV = "FEATX_SCHEDULER"
#: seconds to reach a scheduler before giving up with a SchedulerError
CONNECT_TIMEOUT = 5.0
#: seconds to wait for a first worker when the scheduler has none
WORKER_TIMEOUT = 30.0
LOCAL_HOST = "127.0.0.1"
GPU_RESOURCE = "GPU"


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
            path = extract_on_cluster(client, "cifar10", ExtractConfig(backbone="resnet50"), shards=4)

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
            ``timeout``, or what answers there is not a Dask scheduler (the message names
            the address); no worker joined; or the workers cannot run this featx.
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
        return LocalCluster(
            n_workers=n_workers,
            processes=True,
            threads_per_worker=1,
            host=LOCAL_HOST,
            dashboard_address=f"{LOCAL_HOST}:0",
            silence_logs=logging.ERROR,
        )
    except Exception as error:  # ports, spawn failures: one line for the user
        raise SchedulerError(f"cannot start a local Dask cluster of {n_workers} worker(s): {error}") from error


def _remote_client(parsed: SchedulerAddress, *, timeout: float) -> Any:
    """A client of a running scheduler, once :func:`probe` has found one there."""
    from distributed import Client

    address = _scheduler_file_address(parsed.scheduler_file) if parsed.scheduler_file is not None else parsed.text
    probe(address, timeout=timeout)
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError, MemoryError) as error:
        raise _unreachable(parsed.text, timeout, " ".join(str(error).split()) or type(error).__name__) from None


def _unreachable(address: str, timeout: float, reason: str) -> SchedulerError:
    return SchedulerError(
        f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({shorten(reason)}); "
        f"start one (`dask scheduler`, then `dask worker ADDRESS`), check --scheduler / {SCHEDULER_ENV}, or use local:N"
    )


def _scheduler_file_address(path: Path) -> str:
    """The address a scheduler file (``dask scheduler --scheduler-file``) holds."""
    try:
        if not path.is_file():
            raise SchedulerError(f"scheduler file not found: {path}")
        data = json.loads(path.read_bytes().decode("utf-8"))
        address = data["address"]
        if not isinstance(address, str):
            raise TypeError(address)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SchedulerError(f"{path} is not a Dask scheduler file (no address in it: {shorten(str(error))})") from None
    return address


def probe(address: str, *, timeout: float = CONNECT_TIMEOUT) -> dict[str, Any]:
    """Ask ``address`` who it is (Dask's ``identity`` call) and make sure a Dask scheduler
    answers, all within ``timeout`` seconds.

    Connecting and the answer run under one deadline, in a thread of their own: a port
    where something else listens (an HTTP server, the dashboard's port) may accept the
    connection and then say nothing, or answer with bytes that Dask's protocol would take
    for the length of an exabyte-sized message. Neither may hang or crash the command.

    Returns:
        The scheduler's identity (``type``, ``address``, ``workers``, ...).

    Raises:
        SchedulerError: nothing answers, something that is not a Dask scheduler answers,
            or no answer within ``timeout``; one line naming the address.
    """
    import asyncio

    from distributed.comm import connect as connect_comm
    from distributed.security import Security

    async def identity() -> Any:
        comm = await connect_comm(address, timeout=timeout, **Security().get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            # a moment beyond the connection's own deadline, so that a refused or unroutable
            # address is reported as such, and a peer that never answers by this one
            outcome["reply"] = asyncio.run(asyncio.wait_for(identity(), timeout + 1.0))
        except BaseException as error:  # reported by the caller, whatever it is
            outcome["error"] = error

    thread = threading.Thread(target=ask, name="featx-scheduler-probe", daemon=True)
    thread.start()
    thread.join(timeout + 3.0)
    error = outcome.get("error")
    if thread.is_alive() or isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        raise SchedulerError(
            f"no Dask scheduler answered at {address} within {timeout:g} s (nothing there, an unroutable address, or a "
            f"server of another kind, such as the dashboard's HTTP port); check --scheduler / {SCHEDULER_ENV} (the scheduler's "
            "port is usually 8786)"
        )
    if isinstance(error, OSError):
        raise _unreachable(address, timeout, str(error) or type(error).__name__)
    reply = outcome.get("reply")
    if error is not None or not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        if isinstance(error, MemoryError):  # a length read from bytes of another protocol
            what = "its answer is not in Dask's protocol"
        elif error is not None:
            what = f"{type(error).__name__}: {error}"
        else:
            what = f"it answered {quote(reply)}"
        raise SchedulerError(
            f"{address} answers, but not as a Dask scheduler ({shorten(what, 120)}); check --scheduler / {SCHEDULER_ENV} "
            "(the scheduler's port is usually 8786, the dashboard's 8787)"
        )
    return reply


def _check_workers(client: Client, address: str, *, worker_timeout: float) -> None:
    """At least one worker, and every worker runs this featx version."""
    if not client.scheduler_info(n_workers=1)["workers"]:
        log.info("waiting up to %g s for a Dask worker to join %s", worker_timeout, address)
        try:
            client.wait_for_workers(1, timeout=worker_timeout)
        except TimeoutError:
            raise SchedulerError(
                f"the Dask scheduler at {address} has no workers (waited {worker_timeout:g} s); start some with `dask worker {address}`"
            ) from None
    try:
        versions = client.run(_featx_version)
    except Exception as error:  # a worker that cannot import featx cannot unpickle the function
        raise SchedulerError(
            f"the Dask workers of {address} cannot run featx ({type(error).__name__}: {error}); install featx (pip install 'featx[dask]') on every worker"
        ) from None
    other = {worker: version for worker, version in versions.items() if version != __version__}
    if other:
        listed = ", ".join(f"{worker} has {version}" for worker, version in sorted(other.items()))
        raise SchedulerError(
            f"Dask workers run another featx version than this one ({__version__}): {listed}; install the same version everywhere"
        )


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
        "scheduler": client.scheduler.address if client.scheduler is not None else "?",
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


@contextlib.contextmanager
def fold_work_on(client: Client) -> Iterator[dict[str, Any]]:
    """Run the joblib work inside the block (a fit's folds) as tasks on ``client``'s cluster.

    Example::

        with connect("local:2") as client, fold_work_on(client) as environment:
            featx.fit("resnet50", clf="logreg", environment=environment)

    Yields:
        ``{"dask": cluster_summary(client)}``, for the run record's ``environment``.
    """
    from joblib import parallel_config

    log.info("fold work runs as Dask tasks on %s", describe(client))
    with parallel_config(backend="dask", client=client):
        yield {"dask": cluster_summary(client)}

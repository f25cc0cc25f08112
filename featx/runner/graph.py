"""A pipeline's work as a graph of tasks, and the seam where executors plug in.

A :class:`Task` is one unit of work (an extraction, a fit, a PCA plot) with the keys of
the tasks it depends on; a :class:`TaskGraph` lists them in an order where every task
comes after its dependencies. An *executor* carries out a graph: any callable
``executor(graph) -> {key: Outcome}``. :func:`execute_serial` runs the tasks one after
the other here; a concurrent executor (Dask: :func:`featx.cluster.pipeline_executor`)
submits each task once its dependencies are done, as ``run_task(task,
*dependency_outcomes)``. Tasks hold only module-level functions and picklable
arguments, and :func:`run_task` is where an outcome (done, cached, failed, skipped) is
decided, so every executor behaves the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from featx.core.errors import ConfigError, FeatxError

log = logging.getLogger(__name__)

TaskKind = Literal["extract", "fit", "pca", "curve"]
Status = Literal["done", "cached", "failed", "skipped"]


# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Task:
    """One unit of work: ``func(*args, *(value of each dependency))``.

    Attributes:
        key: unique name in the graph (``extract:resnet50``, ``fit:resnet50:logreg``).
        kind: ``extract``, ``fit``, ``pca`` or ``curve``.
        func: a module-level function (picklable), returning a :class:`TaskValue`.
        args: its leading arguments (frozen configs and plain values, picklable).
        deps: keys of the tasks whose values are passed after ``args``, in this order.
        label: a short description for logs and summaries.
    """

    key: str
    kind: TaskKind
    func: Callable[..., TaskValue]
    args: tuple[Any, ...]
    deps: tuple[str, ...] = ()
    label: str = ""


@dataclass(frozen=True)
class TaskGraph:
    """Tasks in an order where every task comes after its dependencies (a serial schedule).

    Raises:
        ConfigError: a repeated key, or a dependency that is not an earlier task.
    """

    tasks: tuple[Task, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for task in self.tasks:
            if task.key in seen:
                raise ConfigError(f"task {task.key!r} appears twice in the graph")
            missing = [d for d in task.deps if d not in seen]
            if missing:
                raise ConfigError(f"task {task.key!r} depends on {', '.join(missing)}, which is not an earlier task")
            seen.add(task.key)

    def __getitem__(self, key: str) -> Task:
        return next(task for task in self.tasks if task.key == key)

    def __len__(self) -> int:
        return len(self.tasks)

    def of_kind(self, kind: TaskKind) -> list[Task]:
        """The tasks of one kind, in graph order."""
        return [task for task in self.tasks if task.kind == kind]


@dataclass(frozen=True)
class TaskValue:
    """What a task function returns: its product, and whether it already existed."""

    value: Any
    cached: bool


@dataclass(frozen=True)
class Outcome:
    """How a task ended.

    Attributes:
        key: the task's key.
        status: ``done`` (computed now), ``cached`` (existed), ``failed`` (a FeatxError,
            in ``error``) or ``skipped`` (a dependency did not succeed).
        value: the product (a feature file path, a run record, a PCA result), or None.
        error: the error message, for failed and skipped tasks.
        seconds: wall time of the task.
    """

    key: str
    status: Status
    value: Any = None
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("done", "cached")


#: the seam for other executors: carry out every task of the graph, return each one's outcome
Executor = Callable[[TaskGraph], Mapping[str, Outcome]]


def run_task(task: Task, *deps: Outcome) -> Outcome:
    """Run one task given its dependencies' outcomes (in ``task.deps`` order).

    Skipped when a dependency did not succeed; failed (not raised) on a FeatxError.
    Any other exception propagates.
    """
    blocked = [d for d in deps if not d.ok]
    if blocked:
        return Outcome(task.key, "skipped", error=f"needs {blocked[0].key}, which {blocked[0].status}")
    start = time.perf_counter()
    try:
        result = task.func(*task.args, *(d.value for d in deps))
    except FeatxError as error:
        return Outcome(task.key, "failed", error=str(error), seconds=time.perf_counter() - start)
    return Outcome(task.key, "cached" if result.cached else "done", value=result.value, seconds=time.perf_counter() - start)


def execute_serial(graph: TaskGraph) -> dict[str, Outcome]:
    """The default executor: every task in graph order, in this process.

    Returns:
        Task key -> outcome, for every task.
    """
    outcomes: dict[str, Outcome] = {}
    for number, task in enumerate(graph.tasks, start=1):
        log.info("[%d/%d] %s", number, len(graph), task.label or task.key)
        outcome = run_task(task, *(outcomes[d] for d in task.deps))
        outcomes[task.key] = outcome
        log_outcome(task, outcome)
    return outcomes


def log_outcome(task: Task, outcome: Outcome) -> None:
    """Log how a task ended (an error for a failure, a warning for a skip), for executors."""
    name = task.label or task.key
    if outcome.status == "failed":
        log.error("%s failed: %s", name, outcome.error)
    elif outcome.status == "skipped":
        log.warning("%s skipped: %s", name, outcome.error)
    else:
        log.info("%s: %s in %.1f s", name, outcome.status, outcome.seconds)


def describe_graph(graph: TaskGraph) -> str:
    """One line per task (key, what it needs), for ``--dry-run`` style listings and logs."""
    return "\n".join(f"{task.key}" + (f"  <- {', '.join(task.deps)}" if task.deps else "") for task in graph.tasks)

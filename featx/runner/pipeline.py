"""``featx run``: a pipeline as a graph of tasks, carried out by an executor, then the report.

Two steps with a small seam between them (:mod:`featx.runner.graph`):

* :func:`plan_pipeline` turns a :class:`~featx.runner.spec.PipelineSpec` into a
  :class:`~featx.runner.graph.TaskGraph`: one extraction per backbone, one fit per
  (backbone, classifier) depending on that backbone's extraction, one PCA plot per
  (backbone, scaling) depending on it too. Nothing is read or computed while planning.
* an *executor* carries out the graph (:func:`~featx.runner.graph.execute_serial` by
  default; :func:`featx.cluster.pipeline_executor` on a Dask cluster).

Every task is idempotent and cheap when its product exists: an extraction whose cache
entry is complete returns at once without building a model, a fit with an up-to-date
run record returns that record without fitting (``force`` refits), and PCA plots drawn
for the same features and sample are reused. So a rerun of a finished pipeline costs
reading the data set's index and a few file attributes.

A task that fails with a :class:`~featx.core.errors.FeatxError` (weights that cannot be had,
a fit the data cannot support) does not stop the others: its dependants are skipped, the
rest runs, the report shows what exists, and :attr:`PipelineResult.failures` lists what
went wrong. Other exceptions are bugs and propagate.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featx._version import __version__
from featx.core import paths
from featx.core.atomic import atomic_write_text
from featx.core.errors import FeatxError
from featx.core.ownership import FileKind, json_with
from featx.core.paths import safe_name
from featx.extraction.config import ExtractRequest
from featx.fitting.classifiers import classifier_label
from featx.fitting.config import FitConfig
from featx.fitting.curves import CurveConfig
from featx.fitting.projection import PcaConfig
from featx.fitting.records import RunRecord
from featx.runner.graph import Executor, Outcome, Task, TaskGraph, TaskValue, execute_serial
from featx.runner.spec import PipelineSpec

if TYPE_CHECKING:
    from featx.reporting.render import ReportFiles

log = logging.getLogger(__name__)

#: the manifest of a ``featx run``, as featx writes it under ``reports/pipelines/``
MANIFEST_KIND = FileKind("pipeline manifest", json_with("name", "spec", "tasks"))

# --------------------------------------------------------------------------- task functions


def extract_task(request: ExtractRequest) -> TaskValue:
    """Extract (or find in the cache) one backbone's features; the value is the file's path."""
    from featx.extraction.engine import extract_request

    path, cached = extract_request(request)
    return TaskValue(path, cached)


def fit_task(
    config: FitConfig,
    n_jobs: int,
    device: str,
    force: bool,
    cache_dir: str,
    reports_dir: str,
    features: Path,
    *,
    environment: Mapping[str, Any] | None = None,
) -> TaskValue:
    """Fit one classifier on one feature file, or return its up-to-date record; the value
    is the record. ``environment`` goes into the record (an executor says where it ran)."""
    from featx.fitting.protocol import find_existing, fit

    if not force:
        found = find_existing(features, config, dataset=None, cache_dir=cache_dir, reports_dir=reports_dir, device=device)
        if found is not None:
            return TaskValue(found, True)
    record = fit(
        features, config, dataset=None, cache_dir=cache_dir, reports_dir=reports_dir, n_jobs=n_jobs, device=device, environment=environment
    )
    return TaskValue(record, False)


def pca_task(config: PcaConfig, force: bool, cache_dir: str, reports_dir: str, features: Path) -> TaskValue:
    """Draw (or reuse) the PCA plots of one feature file; the value is the PcaResult."""
    from featx.fitting.projection import pca

    result = pca(features, config, dataset=None, cache_dir=cache_dir, reports_dir=reports_dir, skip_existing=not force)
    return TaskValue(result, result.reused)


def curve_task(config: CurveConfig, n_jobs: int, cache_dir: str, reports_dir: str, features: Path) -> TaskValue:
    """Draw the data-efficiency curve of one feature file; the value is the CurveRecord."""
    from featx.fitting.curves import curve

    record = curve(features, config, dataset=None, cache_dir=cache_dir, reports_dir=reports_dir, n_jobs=n_jobs)
    return TaskValue(record, False)


# --------------------------------------------------------------------------- planning


def plan_pipeline(
    spec: PipelineSpec,
    *,
    force: bool = False,
    force_extract: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
) -> TaskGraph:
    """The task graph of a pipeline (reads nothing, computes nothing).

    Per backbone, in file order: its extraction, then a fit per classifier and a PCA plot
    per scaling the classifiers use, each depending on that extraction only. A serial
    executor so finishes one backbone before starting the next.

    Args:
        spec: the pipeline.
        force: refit every classifier and redraw every PCA plot.
        force_extract: extract every backbone again (implies ``force``).
        cache_dir: the feature cache root (default ``features/`` or ``FEATX_CACHE_DIR``).
        reports_dir: the reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
    """
    force = force or force_extract
    cache = str(paths.cache_dir(cache_dir))
    reports = str(paths.reports_dir(reports_dir))
    tasks: list[Task] = []
    for index, request in enumerate(spec.backbones):
        request = request.replace(options=request.options.replace(cache_dir=cache, force=force_extract))
        name = _backbone_key(spec, index)
        extract_key = f"extract:{name}"
        tasks.append(Task(extract_key, "extract", extract_task, (request,), label=f"extract {name} ({spec.dataset})"))
        for fit_config in spec.classifiers:
            column = _classifier_key(fit_config)
            tasks.append(
                Task(
                    f"fit:{name}:{column}",
                    "fit",
                    fit_task,
                    (fit_config, spec.n_jobs, spec.fit_device, force, cache, reports),
                    (extract_key,),
                    label=f"fit {column} on {name}",
                )
            )
        if spec.pca is not None:
            for scale in spec.scales:
                tasks.append(
                    Task(
                        f"pca:{name}:{scale.value}",
                        "pca",
                        pca_task,
                        (spec.pca.replace(scale=scale), force, cache, reports),
                        (extract_key,),
                        label=f"PCA of {name} (scale {scale.value})",
                    )
                )
        for number, curve_config in enumerate(spec.curves):
            tasks.append(
                Task(
                    f"curve:{name}:{number}",
                    "curve",
                    curve_task,
                    (curve_config, spec.n_jobs, cache, reports),
                    (extract_key,),
                    label=f"data-efficiency curve of {curve_config.fit.clf} on {name}",
                )
            )
    return TaskGraph(tuple(tasks))


#: what ``featx run --dry-run`` says of a task
CACHED, UP_TO_DATE, TO_DO = "cached", "up to date", "to do"


def task_states(graph: TaskGraph) -> dict[str, str]:
    """What running the graph would do with each task, without doing any of it:
    :data:`CACHED` (an extraction whose entry is complete and trusted), :data:`UP_TO_DATE`
    (a fit with a current run record, PCA plots drawn for the same features), or
    :data:`TO_DO` (with the reason when it is not simply missing: forced, or the plan
    failed, e.g. a data set that is not there).

    Reads attributes and records only: no image is read for the features, no model built.
    """
    from featx.extraction.engine import is_cache_hit, plan_request
    from featx.fitting.projection import find_existing_pca
    from featx.fitting.protocol import find_existing

    states: dict[str, str] = {}
    features: dict[str, Path] = {}
    for task in graph.tasks:
        try:
            if task.kind == "extract":
                request: ExtractRequest = task.args[0]
                plan = plan_request(request)
                if request.options.force:
                    states[task.key] = f"{TO_DO} (forced)"
                elif is_cache_hit(plan):
                    states[task.key], features[task.key] = CACHED, plan.path
                else:
                    states[task.key] = TO_DO
                continue
            path = features.get(task.deps[0])
            if task.kind == "curve":  # curves are drawn anew on every run (no record to reuse)
                states[task.key] = TO_DO if path is not None else f"{TO_DO} (after its extraction)"
                continue
            force, cache, reports = (task.args[3], task.args[4], task.args[5]) if task.kind == "fit" else task.args[1:4]
            if path is None:
                states[task.key] = f"{TO_DO} (after its extraction)"
            elif force:
                states[task.key] = f"{TO_DO} (forced)"
            elif task.kind == "fit":
                found = find_existing(path, task.args[0], dataset=None, cache_dir=cache, reports_dir=reports, device=task.args[2])
                states[task.key] = UP_TO_DATE if found is not None else TO_DO
            else:
                found_pca = find_existing_pca(path, task.args[0], dataset=None, cache_dir=cache, reports_dir=reports)
                states[task.key] = UP_TO_DATE if found_pca is not None else TO_DO
        except FeatxError as error:
            states[task.key] = f"{TO_DO} ({' '.join(str(error).split())[:120]})"
    return states


def _backbone_key(spec: PipelineSpec, index: int) -> str:
    """The backbone's name, with its position when the pipeline has it more than once."""
    name = spec.backbones[index].config.backbone
    repeated = sum(r.config.backbone == name for r in spec.backbones) > 1
    return f"{name}#{index}" if repeated else name


def _classifier_key(config: FitConfig) -> str:
    return classifier_label(config.clf, config.scale, config.pca)


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class PipelineResult:
    """What :func:`run_pipeline` did.

    Attributes:
        spec: the pipeline as run (overrides applied).
        graph: its tasks.
        outcomes: task key -> outcome.
        manifest: the run's manifest, ``<reports>/pipelines/<name>.json``.
        report: the report files, or None when not asked for or not possible.
        report_error: why there is no report, when one was asked for.
        seconds: wall time of the whole run.
    """

    spec: PipelineSpec
    graph: TaskGraph
    outcomes: dict[str, Outcome]
    manifest: Path
    report: ReportFiles | None = None
    report_error: str = ""
    seconds: float = 0.0

    @property
    def failures(self) -> list[Outcome]:
        """Failed and skipped tasks, in graph order."""
        return [self.outcomes[t.key] for t in self.graph.tasks if not self.outcomes[t.key].ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def records(self) -> list[RunRecord]:
        """The run record of every fit that succeeded, in graph order."""
        return [self.outcomes[t.key].value for t in self.graph.of_kind("fit") if self.outcomes[t.key].ok]

    def __repr__(self) -> str:
        done = ", ".join(f"{kind}: " + "/".join(f"{n} {status}" for status, n in by.items()) for kind, by in self.counts().items())
        return f"PipelineResult({self.spec.name}: {done}; {len(self.failures)} failed, {self.seconds:.0f} s)"

    def _repr_html_(self) -> str:
        from featx.core.display import html_table

        rows = [[t.key, self.outcomes[t.key].status, f"{self.outcomes[t.key].seconds:.1f} s"] for t in self.graph.tasks]
        return html_table(rows, ["task", "status", "time"], caption=repr(self))

    def counts(self) -> dict[str, dict[str, int]]:
        """Task kind -> status -> number of tasks."""
        table: dict[str, dict[str, int]] = {}
        for task in self.graph.tasks:
            status = self.outcomes[task.key].status
            table.setdefault(task.kind, {}).setdefault(status, 0)
            table[task.kind][status] += 1
        return table

    def summary(self) -> str:
        """A plain-text summary: test accuracy per backbone x classifier (best starred), task counts, failures."""
        from featx.core.console import format_table

        columns = list(dict.fromkeys(_classifier_key(c) for c in self.spec.classifiers))
        rows, best = [], max((r.test_accuracy for r in self.records), default=None)
        for index, request in enumerate(self.spec.backbones):
            name = _backbone_key(self.spec, index)
            random = request.config.weights == "random"
            cells: list[str] = []
            for column in columns:
                outcome = self.outcomes.get(f"fit:{name}:{column}")
                if outcome is None or not outcome.ok:
                    cells.append(outcome.status if outcome else "-")
                    continue
                accuracy = outcome.value.test_accuracy
                cells.append(f"{accuracy * 100:.2f}%{' *' if accuracy == best else ''}")
            rows.append([name + (" [RANDOM WEIGHTS]" if random else ""), *cells])
        lines = [f"{self.spec.name}: test accuracy on {self.spec.dataset} (* best)", "", format_table(rows, ["backbone", *columns]), ""]
        names = {"extract": "extractions", "fit": "fits", "pca": "PCA plots", "curve": "curves"}
        counts = self.counts()
        parts = [
            f"{names[kind]}: " + ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) for kind, statuses in counts.items()
        ]
        lines.append("; ".join(parts) + f" ({self.seconds:.1f} s)")
        for outcome in self.failures:
            lines.append(f"{outcome.status.upper()}: {self.graph[outcome.key].label}: {outcome.error}")
        if self.report_error:
            lines.append(f"no report: {self.report_error}")
        return "\n".join(lines)


def run_pipeline(
    spec: PipelineSpec,
    *,
    force: bool = False,
    force_extract: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    executor: Executor = execute_serial,
    report: bool = True,
    command: str | None = None,
) -> PipelineResult:
    """Run a whole comparison: extract what is not cached, fit what has no up-to-date
    record, draw the PCA plots, write the run's manifest, then the report.

    Example::

        spec = featx.load_pipeline("pipelines/cifar10-classic.yaml").with_overrides(limit=500)
        result = featx.run_pipeline(spec)
        print(result.summary()); result.report.html

    Args:
        spec: the pipeline (see :func:`featx.runner.spec.load_pipeline`).
        force: refit every classifier and redraw every PCA plot.
        force_extract: extract every backbone again too.
        cache_dir: the feature cache root.
        reports_dir: the reports root.
        executor: carries out the task graph (default: :func:`execute_serial`).
        report: write ``<reports>/index.html`` (with every record under the reports root).
        command: the command line, for the manifest and the report's provenance.

    Returns:
        The outcomes; failed tasks are in ``failures`` (they do not raise).
    """
    started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    graph = plan_pipeline(spec, force=force, force_extract=force_extract, cache_dir=cache_dir, reports_dir=reports_dir)
    kinds = {kind: len(graph.of_kind(kind)) for kind in ("extract", "fit", "pca")}
    log.info("%s: %d extraction(s), %d fit(s), %d PCA plot(s) on %s", spec.name, kinds["extract"], kinds["fit"], kinds["pca"], spec.dataset)
    outcomes = dict(executor(graph))
    missing = [task.key for task in graph.tasks if task.key not in outcomes]
    if missing:
        raise FeatxError(f"the executor returned no outcome for {', '.join(missing)}")
    command = command or f"featx run {spec.source or spec.name}"
    manifest = write_manifest(spec, graph, outcomes, command=command, started=started_at, reports_dir=reports_dir)
    files, report_error = None, ""
    if report:
        from featx.extraction.thumbnails import row_thumbnails
        from featx.reporting.render import report as write_report

        try:
            files = write_report(reports_dir, command=command, thumbnails=row_thumbnails)
        except FeatxError as error:
            report_error = str(error)
            log.error("no report: %s", error)
    return PipelineResult(spec, graph, outcomes, manifest, files, report_error, time.perf_counter() - start)


def write_manifest(
    spec: PipelineSpec,
    graph: TaskGraph,
    outcomes: Mapping[str, Outcome],
    *,
    command: str,
    started: str,
    reports_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``<reports>/pipelines/<name>.json``: the spec, the command, and each task's outcome.

    The report lists these under "How this was made".
    """
    from featx.core.hashing import jsonable

    def product(outcome: Outcome) -> str | None:
        value = outcome.value
        if isinstance(value, RunRecord):
            return value.record_file
        if isinstance(value, Path):
            return str(value)
        return str(getattr(value, "summary_json", "")) or None

    data = {
        "name": spec.name,
        "description": spec.description,
        "command": command,
        "featx_version": __version__,
        "started": started,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": spec.to_dict(),
        "tasks": [
            {
                "key": t.key,
                "kind": t.kind,
                "status": outcomes[t.key].status,
                "seconds": round(outcomes[t.key].seconds, 3),
                "error": outcomes[t.key].error or None,
                "product": product(outcomes[t.key]),
            }
            for t in graph.tasks
        ],
    }
    path = paths.reports_dir(reports_dir) / "pipelines" / f"{safe_name(spec.name)}.json"
    return atomic_write_text(path, json.dumps(jsonable(data), indent=2) + "\n", kind=MANIFEST_KIND)

"""Pipelines and the runner: a whole comparison declared once and carried out, then the report.

It owns the pipeline file's schema and spec (:mod:`~featx.runner.spec`), the task graph
and its executor seam (:mod:`~featx.runner.graph`), planning and running a pipeline with
its manifest (:mod:`~featx.runner.pipeline`), and the offline demo with its pipeline file
shipped inside the package (:mod:`~featx.runner.demo_run`, ``featx/runner/pipelines/demo.yaml``).

Import rule: the runner sits above the stages and the report and calls them; it imports
:mod:`featx.core`, :mod:`featx.cache`, stage one, stage two and the report, never the Dask
home or the CLI. Executors other than the serial one plug in from above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featx.core.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "load_pipeline": "featx.runner.spec",
        "parse_pipeline": "featx.runner.spec",
        "PipelineSpec": "featx.runner.spec",
        "plan_pipeline": "featx.runner.pipeline",
        "run_pipeline": "featx.runner.pipeline",
        "PipelineResult": "featx.runner.pipeline",
        "Task": "featx.runner.graph",
        "TaskGraph": "featx.runner.graph",
        "Outcome": "featx.runner.graph",
        "run_task": "featx.runner.graph",
        "execute_serial": "featx.runner.graph",
        "demo": "featx.runner.demo_run",
    },
)

if TYPE_CHECKING:  # pragma: no cover
    from featx.runner.demo_run import demo
    from featx.runner.graph import Outcome, Task, TaskGraph, execute_serial, run_task
    from featx.runner.pipeline import PipelineResult, plan_pipeline, run_pipeline
    from featx.runner.spec import PipelineSpec, load_pipeline, parse_pipeline

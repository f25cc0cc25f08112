"""``featx run``: a whole comparison from a pipeline file: extract, fit, PCA, report."""

from __future__ import annotations

import click

from featx.cli.options import cache_dir_option, command_line, reports_dir_option, scheduler_option, shards_option
from featx.extraction.devices import PRECISIONS


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("-d", "--dataset", metavar="SPEC", help="Read this data set instead of the file's (e.g. imagefolder:/data/cifar10-jpg).")
@click.option("--limit", type=click.IntRange(min=1), help="Keep a class-balanced subset of N images per split.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where downloadable data sets live.")
@click.option("--weights", metavar="pretrained|random|PATH", help="The weights of every backbone (e.g. random, to try a pipeline offline).")
@click.option("--device", metavar="auto|cpu|cuda[:i]", help="Extraction device of every backbone.")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Extraction precision of every backbone.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per extraction batch.")
@click.option("--n-jobs", type=int, help="Fold workers of every fit (-1: all cores).")
@click.option(
    "--skip-bad", is_flag=True, default=None, help="Leave out image files that cannot be decoded (counted and named) instead of stopping."
)
@click.option("-b", "--backbone", "backbones", multiple=True, metavar="NAME", help="Run only this backbone of the file (repeatable).")
@click.option("--clf", "classifiers", multiple=True, metavar="NAME", help="Run only this classifier of the file (repeatable).")
@click.option("--force", is_flag=True, help="Refit every classifier and redraw the PCA plots even when up to date.")
@click.option("--force-extract", is_flag=True, help="Extract the features again too (implies --force).")
@click.option("--no-report", is_flag=True, help="Do not write reports/index.html at the end.")
@click.option("--dry-run", is_flag=True, help="Check the file, print each task and whether it is cached, up to date or to do, and stop.")
@scheduler_option
@shards_option
@cache_dir_option
@reports_dir_option
@click.pass_context
def run(
    ctx: click.Context,
    pipeline: str,
    dataset: str | None,
    limit: int | None,
    data_dir: str | None,
    weights: str | None,
    device: str | None,
    precision: str | None,
    batch_size: int | None,
    n_jobs: int | None,
    skip_bad: bool | None,
    backbones: tuple[str, ...],
    classifiers: tuple[str, ...],
    force: bool,
    force_extract: bool,
    no_report: bool,
    dry_run: bool,
    scheduler: str | None,
    shards: int | None,
    cache_dir: str | None,
    reports_dir: str | None,
) -> None:
    """Run the comparison a pipeline file declares: extract every backbone's features that
    are not cached yet, fit every classifier that has no up-to-date run record, draw the
    PCA plots, then write the report. A rerun of a finished pipeline builds no model and
    fits nothing.

    With --scheduler the tasks run on a Dask cluster: the extractions of different
    backbones at once, and each backbone's fits (their folds as tasks) and PCA plots as
    soon as its features exist. The cache and reports folders must be shared with the
    workers.

    Prints a summary table, then the report's path. Exit status 2 when a task failed
    (the others still run, and the report shows what exists).

    \b
    Examples:
      featx run pipelines/cifar10-classic.yaml
      featx run pipelines/cifar10-classic.yaml --dataset imagefolder:/data/cifar10-jpg --limit 500 --weights random
      featx run pipelines/cifar10-modern.yaml --device cuda --backbone vit_small_patch14_dinov2.lvd142m
      featx run pipelines/cifar10-classic.yaml --scheduler tcp://head:8786 --shards 4
    """
    from featx.cluster.scheduler import connect, scheduler_address
    from featx.core.errors import ConfigError, FeatxError
    from featx.runner.graph import Executor, execute_serial
    from featx.runner.pipeline import plan_pipeline, run_pipeline
    from featx.runner.spec import load_pipeline

    scheduler = scheduler_address(scheduler)
    if shards is not None and scheduler is None:
        raise ConfigError("--shards N needs a Dask scheduler (--scheduler ADDRESS or local:N, or FEATX_SCHEDULER)")
    spec = load_pipeline(pipeline).with_overrides(
        dataset=dataset,
        limit=limit,
        data_dir=data_dir,
        weights=weights,
        device=device,
        precision=precision,
        batch_size=batch_size,
        n_jobs=n_jobs,
        skip_bad=skip_bad or None,
        backbones=backbones,
        classifiers=classifiers,
    )
    if dry_run:
        from featx.core.console import format_table
        from featx.runner.pipeline import task_states

        graph = plan_pipeline(spec, force=force, force_extract=force_extract, cache_dir=cache_dir, reports_dir=reports_dir)
        states = task_states(graph)
        click.echo(f"{spec.name}: {len(graph)} tasks on {spec.dataset}")
        click.echo(format_table([[task.key, states[task.key]] for task in graph.tasks], ["task", "state"]))
        return
    with connect(scheduler) as client:
        executor: Executor = execute_serial
        if client is not None:
            from featx.cluster.executor import pipeline_executor

            executor = pipeline_executor(client, shards=shards)
        result = run_pipeline(
            spec,
            force=force,
            force_extract=force_extract,
            cache_dir=cache_dir,
            reports_dir=reports_dir,
            executor=executor,
            report=not no_report,
            command=command_line(ctx),
        )
    click.echo(result.summary())
    if result.report is not None:
        click.echo(f"comparison: {result.report.csv}, {result.report.markdown}")
        click.echo(str(result.report.html))
    if result.failures:
        raise FeatxError(f"{len(result.failures)} of {len(result.graph)} tasks did not succeed (see above)")

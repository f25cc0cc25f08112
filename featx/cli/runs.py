"""``featx runs``: list, show and remove fitted runs (run records and their models)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from featx.cli.options import reports_dir_option

if TYPE_CHECKING:
    from featx.fitting.records import RunRecord


@click.group()
def runs() -> None:
    """Fitted runs: the records and models `featx fit` wrote under reports/runs/.

    \b
    Example:
      featx runs ls
      featx runs show 3f2a9c1d
      featx runs rm 3f2a9c1d
    """


@runs.command("ls")
@reports_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per run.")
def ls(reports_dir: str | None, as_json: bool) -> None:
    """List run records: key, data set, backbone, classifier, best grid point, CV and test accuracy.

    \b
    Example:
      featx runs ls
    """
    from featx.core.console import format_table
    from featx.fitting.grids import format_point
    from featx.fitting.records import scan_records

    scan = scan_records(reports_dir)
    if as_json:
        for record in scan.records:
            click.echo(json.dumps(_summary(record), sort_keys=True))
        return
    if not scan.records:
        click.echo("no run records" + (f" ({len(scan.skipped)} unreadable files skipped)" if scan.skipped else ""))
        return
    rows = [
        [
            r.run_key,
            r.features.dataset,
            r.features.backbone,
            r.clf,
            format_point(r.best_params, short=True),
            f"{r.cv}",
            f"{r.cv_best_score:.4f}",
            f"{r.test_accuracy:.4f}",
            r.created[:19],
        ]
        for r in scan.records
    ]
    click.echo(format_table(rows, ["key", "dataset", "backbone", "clf", "best", "folds", "cv", "test", "created"]))


def _summary(record: RunRecord) -> dict[str, Any]:
    return {
        "run_key": record.run_key,
        "dataset": record.features.dataset,
        "backbone": record.features.backbone,
        "clf": record.clf,
        "best_params": record.best_params,
        "cv": record.cv,
        "cv_best_score": record.cv_best_score,
        "test_accuracy": record.test_accuracy,
        "created": record.created,
        "record_file": record.record_file,
    }


@runs.command("show")
@click.argument("run")
@reports_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the whole run record as JSON.")
def show(run: str, reports_dir: str | None, as_json: bool) -> None:
    """Show one run (RUN: a record file, a run key or a unique prefix of one, or best).

    \b
    Example:
      featx runs show 3f2a9c1d
    """
    from featx.cli.fit import summary
    from featx.deploy.runs import resolve_run

    found = resolve_run(run, reports_dir=reports_dir)
    click.echo(json.dumps(found.record.to_dict(), indent=2) if as_json else summary(found.record, reports_dir))


@runs.command("rm")
@click.argument("runs_", metavar="RUN...", nargs=-1, required=True)
@reports_dir_option
def rm(runs_: tuple[str, ...], reports_dir: str | None) -> None:
    """Remove runs (RUN: a record file or a run key or unique prefix): the record and its model.

    Only files featx wrote under reports/runs/ are removed: anything else is refused and
    left as it is. Run `featx report` afterwards to drop them from the report.

    \b
    Example:
      featx runs rm 3f2a9c1d
    """
    from featx.deploy.runs import remove_run

    for run in runs_:
        for path in remove_run(run, reports_dir=reports_dir):
            click.echo(f"removed {path}")

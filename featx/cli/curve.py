"""``featx curve``: test accuracy against the number of labelled training images per class."""

from __future__ import annotations

import json

import click

from featx.cli.options import cache_dir_option, features_dataset_option, features_option, reports_dir_option, scale_option
from featx.core import paths


@click.command()
@features_option
@click.option("--clf", required=True, help="Classifier: linearsvc, logreg, knn (its default grid unless --C-grid/--k-grid).")
@click.option(
    "--shots", default="1,2,5,10,20,50,100,full", show_default=True, help="Training images per class; full: the whole train split."
)
@click.option("--repeats", type=int, default=5, show_default=True, help="Seeded class-balanced draws per number of shots.")
@click.option("--C-grid", "c_grid", metavar="SPEC", help="C values for the CV on each draw: 0.001,0.01,0.1 or logspace:LO:HI:N.")
@click.option("--k-grid", "k_grid", metavar="SPEC", help="k-NN neighbour counts for the CV on each draw: 1,3,5.")
@click.option("--cv", type=int, default=5, show_default=True, help="Folds at most (fewer when a draw has fewer images per class).")
@scale_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the draws, the folds and the classifier.")
@click.option("--n-jobs", type=int, default=1, show_default=True, help="Folds fitted at once; -1: all cores.")
@click.option("--json", "as_json", is_flag=True, help='Print {"points": [{"shots", "mean", "std", "n_repeats"}, ...], ...} on stdout.')
@features_dataset_option
@cache_dir_option
@reports_dir_option
def curve(
    features: str,
    clf: str,
    shots: str,
    repeats: int,
    c_grid: str | None,
    k_grid: str | None,
    cv: int,
    scale: str,
    seed: int,
    n_jobs: int,
    as_json: bool,
    dataset: str,
    cache_dir: str | None,
    reports_dir: str | None,
) -> None:
    """For each number of labelled training images per class, fit the classifier on seeded
    class-balanced draws of the cached train split (parameters by cross-validation on the
    draw; with one image per class, the classifier's default) and score the whole test
    split. Reads the cached features only. Writes reports/curves/<dataset>/...json; the
    report draws one plot per test set, a line per backbone.

    \b
    Examples:
      featx curve --features resnet50 --clf logreg --shots 1,2,5,10,20,50,100,full --repeats 5
      featx curve --features resnet50 --clf knn --shots 1,5,20,full --json
    """
    from featx.cli.fit import grid_from_options
    from featx.fitting.classifiers import get_classifier
    from featx.fitting.config import FitConfig
    from featx.fitting.curves import CurveConfig
    from featx.fitting.curves import curve as run_curve

    given = {option: value for option, value in {"--C-grid": c_grid, "--k-grid": k_grid}.items() if value is not None}
    grid = grid_from_options(get_classifier(clf), given, ())
    config = CurveConfig(fit=FitConfig(clf=clf, grid=grid, cv=cv, scale=scale, seed=seed, solver="sklearn"), shots=shots, repeats=repeats)
    record = run_curve(features, config, dataset=dataset, cache_dir=cache_dir, reports_dir=reports_dir, n_jobs=n_jobs)
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2))
        return
    for point in record.points:
        click.echo(
            f"{point.shots!s:>5} per class: test accuracy {point.mean:.4f} +/- {point.std:.4f} ({point.n_repeats} draw(s), {point.selection})"
        )
    click.echo(str(paths.reports_dir(reports_dir) / record.record_file))

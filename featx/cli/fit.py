"""``featx fit``: grid-search a classifier on cached features and score it on the test split."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import click

from featx.cli.options import cache_dir_option, features_dataset_option, features_option, reports_dir_option, scale_option, scheduler_option

if TYPE_CHECKING:
    from featx.fitting.classifiers import ClassifierSpec
    from featx.fitting.records import RunRecord

#: grid options of the command line -> the click parameter that holds each
GRID_OPTIONS = {"--C-grid": "c_grid", "--k-grid": "k_grid", "--vote": "vote", "--metric": "metric"}
#: spellings kept for one release: old option -> its new name (a warning says so)
DEPRECATED_OPTIONS = {"--weights": "--vote"}


class FitCommand(click.Command):
    """Lists the registered classifiers and their default grids at the end of ``--help``."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from featx.fitting.classifiers import CLASSIFIERS

        with formatter.section("Classifiers (--clf) and their default grids"):
            formatter.write_dl([(name, spec.describe().split(": ", 1)[1]) for name, spec in sorted(CLASSIFIERS.items())])
        super().format_epilog(ctx, formatter)


@click.command(cls=FitCommand)
@features_option
@click.option("--clf", required=True, help="Classifier: linearsvc, logreg, knn (see below).")
@click.option("--C-grid", "c_grid", metavar="SPEC", help="C values: 0.001,0.01,0.1 or logspace:LO:HI:N (negative: --C-grid=-1,2).")
@click.option("--k-grid", "k_grid", metavar="SPEC", help="k-NN neighbour counts: 1,3,5,11.")
@click.option("--vote", metavar="SPEC", help="k-NN vote weighting: uniform,distance (the estimator's `weights`).")
@click.option("--weights", "old_weights", metavar="SPEC", hidden=True, help="Deprecated spelling of --vote (removed in the next release).")
@click.option("--metric", metavar="SPEC", help="k-NN distance: euclidean,cosine,manhattan.")
@click.option(
    "--grid",
    "extra_grid",
    multiple=True,
    metavar="NAME=SPEC",
    help="Sweep any other parameter of the estimator by its scikit-learn name, e.g. max_iter=1000,5000 (repeatable; values checked by scikit-learn).",
)
@click.option("--cv", type=int, default=5, show_default=True, help="Stratified folds on the train split.")
@scale_option
@click.option("--pca", type=int, default=None, help="Keep N principal components before the classifier.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the folds, PCA and the classifier.")
@click.option(
    "--n-jobs",
    type=int,
    default=-1,
    show_default=True,
    help="Folds fitted at once; -1: all cores. With --scheduler: folds in flight on the cluster, -1: as many as it has cores (1 fits them here).",
)
@click.option(
    "--solver",
    type=click.Choice(("auto", "torch", "sklearn")),
    default="auto",
    show_default=True,
    help="torch: every fold and grid point in batched solves on --device (the same optimum, a plain scikit-learn model); "
    "sklearn: scikit-learn's estimators, exactly GridSearchCV's scores; auto: torch where it serves the classifier and is faster.",
)
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:i]", help="Where the torch solver runs.")
@click.option(
    "--search",
    type=click.Choice(("grid", "random")),
    default="grid",
    show_default=True,
    help="grid: every grid point; random: --n-iter points drawn log-uniformly between each numeric grid's ends (seeded by --seed).",
)
@click.option("--n-iter", type=int, default=20, show_default=True, help="Points a random search draws.")
@click.option("--skip-existing", is_flag=True, help="Print the record of an identical earlier run instead of fitting again.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON on stdout.")
@scheduler_option
@features_dataset_option
@cache_dir_option
@reports_dir_option
def fit(
    features: str,
    clf: str,
    c_grid: str | None,
    k_grid: str | None,
    vote: str | None,
    old_weights: str | None,
    metric: str | None,
    extra_grid: tuple[str, ...],
    cv: int,
    scale: str,
    pca: int | None,
    seed: int,
    n_jobs: int,
    solver: str,
    device: str,
    search: str,
    n_iter: int,
    skip_existing: bool,
    as_json: bool,
    scheduler: str | None,
    dataset: str,
    cache_dir: str | None,
    reports_dir: str | None,
) -> None:
    """Grid-search a classifier with cross-validation on the train split, refit the best
    grid point on the whole train split, and score it once on the test split.

    Writes the run record (JSON) and the fitted Pipeline (joblib) under
    reports/runs/<dataset>/.

    \b
    Examples:
      featx fit --features resnet50 --clf linearsvc --C-grid 0.0001,0.001,0.01,0.1,1
      featx fit --features resnet50 --clf logreg --C-grid logspace:-4:2:13 --cv 5
      featx fit --features resnet50 --clf logreg --C-grid 0.0001,100 --search random --n-iter 15
      featx fit --features resnet50 --clf knn --k-grid 1,3,5,11,21 --vote uniform,distance --metric euclidean,cosine
      featx fit --features features/cifar10/vgg16__ab12cd.h5 --clf linearsvc --scale l2 --pca 256 --json
      featx fit --features resnet50 --clf linearsvc --scheduler tcp://head:8786     # folds on a Dask cluster
    """
    import contextlib

    from featx.cluster.scheduler import connect
    from featx.fitting.classifiers import get_classifier
    from featx.fitting.config import FitConfig
    from featx.fitting.protocol import fit as run_fit

    spec = get_classifier(clf)
    vote = deprecated_alias("--weights", old_weights, vote)
    given = {"--C-grid": c_grid, "--k-grid": k_grid, "--vote": vote, "--metric": metric}
    grid = grid_from_options(spec, {option: value for option, value in given.items() if value is not None}, extra_grid)
    config = FitConfig(clf=clf, grid=grid, cv=cv, scale=scale, pca=pca, seed=seed, solver=solver, search=search, n_iter=n_iter)
    with connect(scheduler) as client, contextlib.ExitStack() as stack:
        environment = None
        if client is not None:
            from featx.cluster.scheduler import fold_work_on

            environment = stack.enter_context(fold_work_on(client))
        record = run_fit(
            features,
            config,
            dataset=dataset,
            cache_dir=cache_dir,
            reports_dir=reports_dir,
            skip_existing=skip_existing,
            n_jobs=n_jobs,
            device=device,
            environment=environment,
        )
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2))
    else:
        click.echo(summary(record, reports_dir))


def deprecated_alias(old: str, old_value: str | None, value: str | None) -> str | None:
    """The value of an option given under its deprecated spelling ``old``, with a warning.

    Raises:
        ConfigError: both spellings given.
    """
    if old_value is None:
        return value
    from featx.core.errors import ConfigError

    new = DEPRECATED_OPTIONS[old]
    if value is not None:
        raise ConfigError(f"{old} is the old spelling of {new}; give only {new}")
    logging.getLogger("featx.cli").warning("%s in `featx fit` is deprecated and goes in the next release; use %s", old, new)
    return old_value


def grid_from_options(spec: ClassifierSpec, given: dict[str, str], extra: tuple[str, ...]) -> dict[str, str]:
    """Map grid options (``--C-grid`` ...) and ``--grid NAME=SPEC`` to the classifier's parameters.

    Raises:
        ConfigError: an option the classifier has no parameter for, or a malformed ``--grid``.
    """
    from featx.core.errors import ConfigError

    by_option = {param.option: param.name for param in spec.grid}
    grid: dict[str, str] = {}
    for option, value in given.items():
        if option not in by_option:
            own = ", ".join(p.option for p in spec.grid if p.option in GRID_OPTIONS) or "--grid NAME=SPEC"
            raise ConfigError(f"{option} does not apply to {spec.name} (its grid options: {own})")
        grid[by_option[option]] = value
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"bad --grid {item!r}; use NAME=SPEC, e.g. --grid C=0.1,1")
        grid[name.strip()] = value.strip()
    return grid


def summary(record: RunRecord, reports_dir: str | None) -> str:
    """The human-readable result: CV score per grid point, the best, test scores, files."""
    from featx.core.console import format_table
    from featx.fitting.grids import format_point, format_value

    names = list(record.grid)
    rows = []
    for point in record.cv_results:
        marker = "<- best" if point.params == record.best_params else ""
        rows.append([*(format_value(point.params[n]) for n in names), f"{point.mean:.4f}", f"{point.std:.4f}", marker])
    lines = [
        f"{record.clf} on {record.features.backbone} ({record.features.dataset}, key {record.features.key}): "
        f"{record.features.n_train} train / {record.features.n_test} test, {record.features.feature_dim}-d, "
        f"{record.cv}-fold CV, scale {record.scale}" + (f", PCA {record.pca}" if record.pca else ""),
        "",
        format_table(rows, [*names, "cv mean", "cv std", ""]),
        "",
        f"best {format_point(record.best_params)}: CV accuracy {record.cv_best_score:.4f} +/- {record.cv_best_std:.4f}",
        f"test accuracy {record.test_accuracy:.4f}"
        + (f" (95% interval {record.test_accuracy_ci95[0]:.4f}-{record.test_accuracy_ci95[1]:.4f})" if record.test_accuracy_ci95 else "")
        + (f"   top-5 {record.top5_accuracy:.4f}" if record.top5_accuracy is not None else "")
        + f"   macro F1 {record.macro_f1:.4f}",
        f"search {record.search_seconds:.1f} s, refit {record.fit_seconds:.1f} s, predict {record.predict_seconds:.2f} s"
        + (f" (solver {record.solver} on {record.solver_info.get('device', '?')})" if record.solver != "sklearn" else ""),
        f"record: {record.path(reports_dir)}",
        f"model:  {record.model_path(reports_dir)}",
    ]
    return "\n".join(lines)

"""``featx pca``: a 2-D PCA scatter of the test split by class and the explained-variance curve."""

from __future__ import annotations

import click

from featx.cli.options import cache_dir_option, features_dataset_option, features_option, reports_dir_option, scale_option


@click.command()
@features_option
@scale_option
@click.option("--per-class", type=int, default=200, show_default=True, help="Test points drawn per class in the scatter.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the sample of test points.")
@click.option("--skip-existing", is_flag=True, help="Keep plots drawn earlier for the same features, scale, sample size and seed.")
@features_dataset_option
@cache_dir_option
@reports_dir_option
def pca(
    features: str, scale: str, per_class: int, seed: int, skip_existing: bool, dataset: str, cache_dir: str | None, reports_dir: str | None
) -> None:
    """Fit PCA on the train split; draw a class-balanced sample of the test split on the
    first two components (coloured by class) and the cumulative explained variance.

    Writes two PNGs and a JSON summary under reports/pca/, named after the features.

    \b
    Example:
      featx pca --features resnet50
    """
    from featx.fitting.projection import PcaConfig
    from featx.fitting.projection import pca as run_pca

    config = PcaConfig(scale=scale, per_class=per_class, seed=seed)
    result = run_pca(features, config, dataset=dataset, cache_dir=cache_dir, reports_dir=reports_dir, skip_existing=skip_existing)
    marks = ", ".join(f"{count} for {mark}" for mark, count in result.components_for.items())
    click.echo(f"components needed: {marks} of the variance ({len(result.explained_variance_ratio)} in all)")
    click.echo(f"scatter:  {result.scatter_png}")
    click.echo(f"variance: {result.variance_png}")
    click.echo(f"summary:  {result.summary_json}")

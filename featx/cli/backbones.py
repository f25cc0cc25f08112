"""``featx backbones``: the timm models featx can use, their feature size and input size, and
whether their pretrained weights are on this machine."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("pattern", required=False, default="*")
@click.option("--pretrained-here", is_flag=True, help="Only backbones whose pretrained weights are on this machine (no download needed).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per backbone.")
def backbones(pattern: str, pretrained_here: bool, as_json: bool) -> None:
    """List timm backbones matching PATTERN (shell-style; a plain word matches names that
    contain it): the feature dimension, the native input size, and where pretrained
    weights come from (a local source here, the network, or none). Touches no network.

    \b
    Examples:
      featx backbones resnet*
      featx backbones efficientnet --pretrained-here
      featx backbones --pretrained-here        # everything usable offline
    """
    from featx.core.console import format_table
    from featx.extraction.catalog import list_backbones

    found = list_backbones(pattern, pretrained_here=pretrained_here)
    if as_json:
        for info in found:
            click.echo(
                json.dumps(
                    {
                        "backbone": info.name,
                        "feature_dim": info.feature_dim,
                        "input_size": list(info.input_size),
                        "pretrained": info.pretrained,
                        "weights_here": info.here or None,
                    }
                )
            )
        return
    if not found:
        click.echo(f"no backbone matches {pattern!r}" + (" with pretrained weights on this machine" if pretrained_here else ""))
        return
    rows = [
        [
            info.name,
            str(info.feature_dim) if info.feature_dim is not None else "-",
            "x".join(map(str, info.input_size[1:])),
            f"here ({info.here})" if info.here else "network" if info.pretrained else "none",
        ]
        for info in found
    ]
    click.echo(format_table(rows, ["backbone", "dim", "input", "pretrained weights"]))

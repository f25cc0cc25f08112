"""``featx weights``: which pretrained weights this machine has, and how to get the others."""

from __future__ import annotations

import json

import click


@click.group()
def weights() -> None:
    """Pretrained weights on this machine.

    \b
    Example:
      featx weights ls
      featx weights ls --backbone tf_efficientnet_lite0
    """


@weights.command("ls")
@click.option(
    "-b",
    "--backbone",
    "backbones",
    multiple=True,
    metavar="NAME",
    help="A timm model name (repeatable) [default: the classic four, the demo's and those of the known weights packages].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per backbone.")
def ls(backbones: tuple[str, ...], as_json: bool) -> None:
    """For each backbone, the sources --weights pretrained tries, in order, and what each has now:
    the Hugging Face hub cache, torch's hub checkpoints, an installed weights package, the
    network. For a missing one, how to get it (the hub id, the URL, the pip command).
    Touches no network.

    \b
    Example:
      featx weights ls
      featx weights ls --backbone resnet50 --backbone tf_efficientnet_lite2
    """
    from featx.extraction.backbones import CLASSIC_BACKBONES, resolve_backbone
    from featx.extraction.weight_packages import WEIGHT_PACKAGES
    from featx.extraction.weights import SOURCE_LABELS, weight_sources
    from featx.runner.demo_run import demo_backbones

    names = backbones or tuple(dict.fromkeys([*CLASSIC_BACKBONES, *demo_backbones(), *(p.architecture for p in WEIGHT_PACKAGES)]))
    blocks = []
    for name in names:
        backbone = resolve_backbone(name)
        if backbone.is_pixels:
            continue
        statuses = weight_sources(backbone)
        chosen = next((s for s in statuses if s.available), None)
        summary = {
            "backbone": backbone.name,
            "uses": chosen.kind if chosen else None,
            "identity": chosen.weights.identity if chosen and chosen.weights else None,
            "sources": [
                {"source": s.kind, "available": s.available, "detail": s.detail, **({"how_to_get": s.hint} if s.hint else {})}
                for s in statuses
            ],
        }
        if as_json:
            click.echo(json.dumps(summary))
            continue
        if chosen is None:
            head = "--weights pretrained: none on this machine"
        else:
            head = f"--weights pretrained uses the {SOURCE_LABELS[chosen.kind]}"
        lines = [f"{backbone.name}  ({head})"]
        width = max(len(label) for label in SOURCE_LABELS.values())
        for number, status in enumerate(statuses, 1):
            state = ("allowed" if status.kind == "network" else "here") if status.available else "-"
            mark = "*" if status is chosen else " "
            lines.append(f" {mark}{number} {status.label.ljust(width)}  {state.ljust(7)}  {status.detail}")
            if status.hint:
                lines.append(f"    {''.ljust(width)}  {''.ljust(7)}  to get it: {status.hint}")
        blocks.append("\n".join(lines))
    if not as_json:
        click.echo("\n\n".join(blocks))

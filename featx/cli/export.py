"""``featx export``: a fitted run as one TorchScript file that plain torch loads."""

from __future__ import annotations

import click

from featx.cli.options import best_dataset_option, moved_weights_option, reports_dir_option, run_option


@click.command()
@run_option
@click.option("--out", required=True, metavar="FILE.pt", help="The TorchScript file to write; its JSON sidecar goes beside it (FILE.json).")
@moved_weights_option
@best_dataset_option
@reports_dir_option
def export(run: str, out: str, weights: str | None, dataset: str | None, reports_dir: str | None) -> None:
    """Write a fitted run as one self-contained TorchScript file: preprocessing from uint8
    images, the frozen backbone, and the classifier (scaling, PCA and a linear classifier
    folded into one linear layer; k-NN with its training features). It loads with plain
    torch (torch.jit.load), without featx or timm; the JSON sidecar holds the class
    names, the input size and the run it came from.

    \b
    Examples:
      featx export --model best --out model.pt
      featx export --model reports/runs/pets/resnet50__3f2a...__logreg__9c1d....json --out pets.pt
    \b
    Then, anywhere with torch:
      model = torch.jit.load("model.pt")
      scores = model(torch.from_numpy(uint8_images))   # (n, height, width, 3) -> (n, n_classes)
      model.class_names[int(scores[0].argmax())]
    """
    from featx.core.console import human_bytes
    from featx.deploy.export import export_model

    files = export_model(run, out, reports_dir=reports_dir, dataset=dataset, weights=weights)
    click.echo(f"{files.head} head, {files.score} scores, {len(files.class_names)} classes, {human_bytes(files.size_bytes)}")
    click.echo(str(files.sidecar))
    click.echo(str(files.model))

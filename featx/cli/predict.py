"""``featx predict``: label image files and folders with a fitted run."""

from __future__ import annotations

import click

from featx.cli.options import best_dataset_option, moved_weights_option, reports_dir_option, run_option


@click.command()
@run_option
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Best classes listed per image.")
@click.option("--out", default=None, metavar="FILE.csv|FILE.json", help="Write the predictions to this file [default: CSV on stdout].")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout instead of CSV (with the run and the skipped files).")
@click.option(
    "--skip-bad", is_flag=True, help="Leave out images that cannot be decoded (named on stderr and in the JSON) instead of stopping."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per batch [default: 256 on CUDA, 32 on CPU].")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:i]", help="Compute device.")
@click.option("--num-workers", type=click.IntRange(min=0), default=None, help="Processes decoding image files [default: as featx extract].")
@moved_weights_option
@best_dataset_option
@reports_dir_option
def predict(
    run: str,
    paths: tuple[str, ...],
    top_k: int,
    out: str | None,
    as_json: bool,
    skip_bad: bool,
    batch_size: int | None,
    device: str,
    num_workers: int | None,
    weights: str | None,
    dataset: str | None,
    reports_dir: str | None,
) -> None:
    """Label images with a fitted run: its backbone (the exact weights and preprocessing its
    features were made with, refused when they changed), then its saved classifier.

    PATH are image files or folders (searched recursively; a folder of class folders is
    fine). One row per image: path, label, score (probability for logreg and knn,
    decision value for linearsvc) and the top-k labels and scores.

    \b
    Examples:
      featx predict --model best dog.jpg cat.png
      featx predict --model best --dataset pets photos/ --top-k 3 --out labels.csv
      featx predict --model reports/runs/pets/resnet50__3f2a...__logreg__9c1d....json photos/ --json
      featx predict --model 9c1d07 photos/ --skip-bad --device cuda
    """
    from featx.deploy.predictor import check_output, load_predictor, write_predictions

    if out is not None and as_json:
        raise click.UsageError("--json prints to stdout; with --out the file's suffix (.csv or .json) chooses the format")
    if out is not None:
        check_output(out)  # before any work
    predictor = load_predictor(
        run, reports_dir=reports_dir, dataset=dataset, weights=weights, device=device, batch_size=batch_size, num_workers=num_workers
    )
    predictions = predictor.predict(list(paths), skip_bad=skip_bad)
    if out is not None:
        written = write_predictions(predictions, out, top_k=top_k)
        skipped = f", {len(predictions.skipped)} unreadable skipped" if predictions.skipped else ""
        click.echo(f"{len(predictions)} image(s) labelled{skipped}: {written}")
    elif as_json:
        click.echo(predictions.to_json(top_k), nl=False)
    else:
        click.echo(predictions.to_csv(top_k), nl=False)

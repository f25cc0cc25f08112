"""``featx report``: every run record under reports/ on one self-contained HTML page."""

from __future__ import annotations

import click

from featx.cli.options import command_line, reports_dir_option


@click.command()
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="The HTML file to write [default: <reports-dir>/index.html]; comparison.csv and comparison.md go beside it.",
)
@click.option("--no-pca", is_flag=True, help="Show only PCA plots that exist; do not draw missing ones from the cached features.")
@reports_dir_option
@click.pass_context
def report(ctx: click.Context, out: str | None, no_pca: bool, reports_dir: str | None) -> None:
    """Gather every run record under the reports dir into one HTML page (plots embedded,
    viewable offline): per test set a backbone x classifier table of test accuracy with
    the CV score and the chosen parameters, then per backbone its extraction facts and PCA
    plots and per run the grid curve, confusion matrix, per-class scores, the most confused
    class pairs with thumbnails of their misclassified test images, and how it was all
    made. Each cell has its 95% interval and is marked when it is tied with the best
    (exact McNemar test on the same test images, Holm-corrected). Also writes the comparison as CSV and Markdown.

    Prints the page's path last.

    \b
    Examples:
      featx report
      featx report --reports-dir runs-2026 --out /tmp/comparison.html
    """
    from featx.extraction.thumbnails import row_thumbnails
    from featx.reporting.render import report as write_report

    files = write_report(reports_dir, out=out, pca=not no_pca, command=command_line(ctx), thumbnails=row_thumbnails)
    click.echo(
        f"{files.n_runs} run(s) in {files.n_tables} table(s)"
        + ("; RANDOM WEIGHTS flagged on the page" if files.random_weights else "")
        + (f"; {len(files.skipped)} unreadable record file(s) skipped, listed on the page" if files.skipped else "")
    )
    click.echo(f"comparison: {files.csv}, {files.markdown}")
    click.echo(str(files.html))

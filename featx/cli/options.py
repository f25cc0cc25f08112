"""Options shared by several commands, defined once."""

from __future__ import annotations

import click

cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="FEATX_CACHE_DIR",
    show_envvar=True,
    help="Feature cache root [default: features/].",
)

reports_dir_option = click.option(
    "--reports-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="FEATX_REPORTS_DIR",
    show_envvar=True,
    help="Reports root [default: reports/].",
)

"""The ``featx`` command line: a thin layer over the library API.

Each command lives in its own module and is imported only when it runs (or when help
lists it), so ``featx fit`` never pays for importing torch. Library errors
(:class:`featx.core.errors.FeatxError`) become one line on stderr and exit status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from featx._version import __version__
from featx.core.console import one_line, setup_logging
from featx.core.errors import ConfigError, FeatxError

# command name -> "module:attribute"; modules import the heavy library parts lazily.
COMMANDS: dict[str, str] = {
    "cache": "featx.cli.cache:cache",
    "fit": "featx.cli.fit:fit",
    "curve": "featx.cli.curve:curve",
    "pca": "featx.cli.pca:pca",
    "extract": "featx.cli.extract:extract",
    "report": "featx.cli.report:report",
    "run": "featx.cli.run:run",
    "demo": "featx.cli.demo:demo",
    "predict": "featx.cli.predict:predict",
    "export": "featx.cli.export:export",
    "weights": "featx.cli.weights:weights",
    "backbones": "featx.cli.backbones:backbones",
    "runs": "featx.cli.runs:runs",
}

EXIT_USAGE = 2


class FeatxGroup(click.Group):
    """A click group with lazily imported commands and featx's error handling."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attribute = COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FeatxError as error:
            if ctx.find_root().params.get("debug"):
                raise
            command = self.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
            click.echo(f"featx: error: {one_line(_as_flags(error, command))}", err=True)
            ctx.exit(EXIT_USAGE)
        except click.UsageError as error:  # a bad option value, a missing argument: one line too
            if ctx.find_root().params.get("debug"):
                raise
            where = error.ctx.command_path if error.ctx is not None else "featx"
            click.echo(f"featx: error: {one_line(error.format_message())} (see `{where} --help`)", err=True)
            ctx.exit(EXIT_USAGE)


def _as_flags(error: FeatxError, command: click.Command | None) -> str:
    """The error's text, with the config field it names shown as the command's flag
    (``cv: must be at least 2`` -> ``--cv: must be at least 2``)."""
    if not isinstance(error, ConfigError) or not error.field or error.path or command is None:
        return str(error)
    flag = flag_for(command, error.field)
    return f"{flag}: {error.problem}" if flag else str(error)


def flag_for(command: click.Command, field: str) -> str | None:
    """The option of ``command`` that sets the config field ``field`` (``n_jobs`` ->
    ``--n-jobs``, ``grid.C`` -> ``--C-grid``), or None when it has none."""
    head, _, rest = field.partition(".")
    if head == "grid" and rest:
        from featx.fitting.classifiers import CLASSIFIERS

        options = {param.name: param.option for spec in CLASSIFIERS.values() for param in spec.grid}
        flag = options.get(rest)
        return flag if flag and any(flag in p.opts for p in command.params) else f"--grid {rest}="
    for param in command.params:
        if isinstance(param, click.Option) and param.name in (field, head):
            return max(param.opts, key=len)
    return None


@click.group(cls=FeatxGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="featx")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors, and debug output (as -v).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
def main(debug: bool, verbose: int, quiet: bool) -> None:
    """featx: frozen pretrained backbones -> cached embeddings -> classical classifiers.

    \b
    Example:
      featx extract --backbone resnet50        # CIFAR-10 features, cached under features/
      featx fit --features resnet50 --clf logreg
      featx report                             # reports/index.html
      featx run pipelines/cifar10-classic.yaml # the whole comparison, then the report
      featx demo                               # offline: pretrained vs random vs pixels
      featx weights ls                         # which pretrained weights this machine has
      featx backbones resnet --pretrained-here # timm backbones usable offline, with their feature size
      featx runs ls                            # the fitted runs
      featx predict --model best photos/       # label new images with the best run
    """
    setup_logging(-1 if quiet else max(verbose, 1) if debug else verbose)


def run() -> None:  # pragma: no cover - console-script indirection for python -m
    main(prog_name="featx")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

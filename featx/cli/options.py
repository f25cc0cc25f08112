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

# --- stage two (fit, pca) ---------------------------------------------------------------

features_option = click.option(
    "--features",
    required=True,
    metavar="NAME|PATH",
    help="A backbone name (its cached features for --dataset: the full data set before a --limit subset; several such entries: an error listing each) or a path to an .h5 file.",
)

features_dataset_option = click.option(
    "--dataset",
    default="cifar10",
    show_default=True,
    help="Data set folder in the cache, where a backbone name in --features is looked up.",
)

#: the values of featx.fitting.classifiers.Scale (spelled out so that --help needs no scikit-learn)
SCALES = ("standard", "l2", "none")

scale_option = click.option(
    "--scale",
    type=click.Choice(SCALES),
    default="standard",
    show_default=True,
    help="Feature scaling fitted on the training rows: standard (zero mean, unit variance), l2 (unit length rows), none.",
)

# --- Dask ---------------------------------------------------------------------------------

scheduler_option = click.option(
    "--scheduler",
    default=None,
    envvar="FEATX_SCHEDULER",
    show_envvar=True,
    metavar="ADDRESS",
    help="Run on a Dask cluster: tcp://HOST:PORT of a running scheduler, local:N for N worker processes on this machine, "
    "or a scheduler file (.json) [default: run here, without Dask].",
)

shards_option = click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="With --scheduler: split each extraction into N contiguous shards of every split's rows, one Dask task each, stitched into one entry.",
)


def command_line(ctx: click.Context) -> str:
    """The command as the user could type it again: ``featx <command>`` and every option
    that differs from its default (long spellings), for provenance records."""
    import shlex

    parts = ["featx", ctx.info_name or ctx.command.name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if isinstance(param, click.Argument):
            parts += [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
            continue
        if value in (None, False, ()) or value == param.default or not isinstance(param, click.Option):
            continue
        option = max(param.opts, key=len)
        if param.is_flag:
            parts.append(option)
        elif param.multiple:
            for item in value:
                parts += [option, str(item)]
        else:
            parts += [option, str(value)]
    return shlex.join(parts)


# --- a fitted run (predict, export) -------------------------------------------------------

run_option = click.option(
    "--model",
    "run",
    required=True,
    metavar="RUN",
    help="A run record file (reports/runs/<dataset>/...json), a run key (or a unique prefix), or best (the best cell of the latest report).",
)

moved_weights_option = click.option(
    "--weights", default=None, metavar="PATH", help="The backbone's checkpoint, if it moved since extraction (same sha256 required)."
)

best_dataset_option = click.option(
    "--dataset", default=None, metavar="NAME", help="With --model best: the data set whose best run to use (when the report has several)."
)

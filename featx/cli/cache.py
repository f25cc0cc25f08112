"""``featx cache``: list, inspect and remove feature cache entries."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from featx.cli.options import cache_dir_option

if TYPE_CHECKING:
    from featx.cache.reader import CacheInfo
    from featx.cache.shards import ShardSet


@click.group()
def cache() -> None:
    """Inspect and manage the feature cache.

    \b
    Example:
      featx cache ls
      featx cache info 3f2a9c
      featx cache rm 3f2a9c
      featx cache prune
      featx cache stitch 3f2a9c
    """


@cache.command("ls")
@cache_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per entry.")
def ls(cache_dir: str | None, as_json: bool) -> None:
    """List cached feature files: data set, backbone, weights, dims, rows, size, complete?

    Sharded extractions not stitched yet are listed with the shards done.

    \b
    Example:
      featx cache ls
    """
    from featx.cache.manage import list_entries
    from featx.cache.shards import unfinished_shard_sets
    from featx.core.console import format_table, human_bytes

    summaries = [_entry_summary(info) for info in list_entries(cache_dir)]
    summaries += [_shard_set_summary(shard_set) for shard_set in unfinished_shard_sets(cache_dir)]
    if as_json:
        for summary in summaries:
            click.echo(json.dumps(summary, sort_keys=True))
        return
    if not summaries:
        click.echo("the cache is empty")
        return
    rows = []
    for summary in summaries:
        rows.append(
            [
                summary["key"],
                summary["dataset"],
                summary["backbone"],
                summary["weights"],
                str(summary["dim"]),
                " / ".join(f"{name} {n}" for name, n in summary["rows"].items()) or "-",
                human_bytes(summary["size_bytes"]),
                summary["state"],
            ]
        )
    click.echo(format_table(rows, ["key", "dataset", "backbone", "weights", "dim", "rows", "size", "state"]))
    total = sum(int(summary["size_bytes"]) for summary in summaries)
    click.echo(f"total: {len(summaries)} entries, {human_bytes(total)}")


def _entry_summary(info: CacheInfo) -> dict[str, Any]:
    from featx.cache.reader import is_trusted

    if info.attrs.get("damaged") or (info.complete and not is_trusted(info.path, tuple(info.splits))):
        state = "damaged (see featx cache verify)"
    elif info.complete:
        state = f"complete ({len(info.shard_files)} shards)" if info.stitched else "complete"
    elif info.partial:
        state = "partial (resumable)"
    else:
        state = "incomplete"
    weights = str(info.attrs.get("weights", "-"))
    return {
        "key": info.key,
        "path": str(info.path),
        "dataset": info.attrs.get("dataset", info.path.parent.name),
        "backbone": info.attrs.get("backbone", "-"),
        "weights": weights if len(weights) <= 32 else weights[:29] + "...",
        "dim": info.dim,
        "rows": {name: (s.n_rows if s.complete else f"{s.n_done}/{s.n_rows}") for name, s in info.splits.items()},
        "size_bytes": info.size_bytes,
        "state": state,
    }


def _shard_set_summary(shard_set: ShardSet) -> dict[str, Any]:
    return {
        "key": shard_set.key,
        "path": str(shard_set.final),
        "dataset": shard_set.final.parent.name,
        "backbone": shard_set.backbone,
        "weights": "-",
        "dim": "-",
        "rows": {},
        "size_bytes": shard_set.size_bytes,
        "state": f"{shard_set.describe()} (missing: {', '.join(map(str, shard_set.missing))})",
    }


@cache.command("info")
@click.argument("key")
@cache_dir_option
def info(key: str, cache_dir: str | None) -> None:
    """Show every attribute of one entry (KEY: a key, a unique prefix of one, or a path).

    \b
    Example:
      featx cache info 3f2a9c
    """
    from featx.cache.manage import find_entry
    from featx.cache.reader import read_info

    entry = read_info(find_entry(key, cache_dir))
    click.echo(f"path: {entry.path}")
    for name in sorted(entry.attrs):
        click.echo(f"{name}: {json.dumps(entry.attrs[name]) if not isinstance(entry.attrs[name], str) else entry.attrs[name]}")
    for split in entry.splits.values():
        click.echo(
            f"[{split.name}] rows={split.n_rows} dim={split.dim} complete={split.complete} n_done={split.n_done} "
            f"seconds={split.seconds:.1f} images_per_second={split.images_per_second:.1f} device={split.device or '-'}"
        )


@cache.command("rm")
@click.argument("keys", nargs=-1, required=True)
@cache_dir_option
def rm(keys: tuple[str, ...], cache_dir: str | None) -> None:
    """Remove entries (KEY: a key, a unique prefix of one, or a path), partial files included.

    Only files featx wrote in the cache are removed: a path outside the cache, or a file
    in an entry's place that featx did not write for it, is refused and left as it is.

    \b
    Example:
      featx cache rm 3f2a9c
    """
    from featx.cache.manage import remove_entry

    for key in keys:
        for path in remove_entry(key, cache_dir):
            click.echo(f"removed {path}")


@cache.command("prune")
@cache_dir_option
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
def prune(cache_dir: str | None, dry_run: bool) -> None:
    """Remove what no extraction needs: partial files no process is writing, shard files of
    entries complete without them, and lock files no process holds.

    Only files featx wrote in the cache are removed. An unfinished sharded extraction's
    shards are kept (`featx cache stitch` needs them), as are finished entries.

    \b
    Example:
      featx cache prune --dry-run
      featx cache prune
    """
    from featx.cache.manage import prune_cache

    found = prune_cache(cache_dir, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for path in found:
        click.echo(f"{verb} {path}")
    click.echo(f"{verb} {len(found)} files" if found else "nothing to prune")


@cache.command("stitch")
@click.argument("key")
@click.option(
    "--shards", "count", type=click.IntRange(min=1), default=None, help="The shard count, when shard files of several counts are present."
)
@click.option("--force", is_flag=True, help="Stitch again even when the entry is complete.")
@cache_dir_option
def stitch(key: str, count: int | None, force: bool, cache_dir: str | None) -> None:
    """Complete a sharded extraction: stitch its shard files into the entry (no copy).

    KEY: the entry's key, a unique prefix of one, or a path. Every shard must be there
    and complete (`featx cache ls` shows which are missing). Prints the entry's path.

    \b
    Example (Slurm: an array of shards, then a dependent job):
      sbatch --array=0-7 --wrap 'featx extract --backbone resnet50 --shard $SLURM_ARRAY_TASK_ID/8'
      featx cache stitch 3f2a9c
    """
    from featx.cache.shards import stitch_entry

    click.echo(str(stitch_entry(key, count=count, cache_dir=cache_dir, force=force)))


@cache.command("verify")
@click.argument("keys", nargs=-1)
@cache_dir_option
def verify(keys: tuple[str, ...], cache_dir: str | None) -> None:
    """Re-check entries end to end (opens, format, completeness, shapes, checksums).

    Checks every final file in the cache when no KEY is given; exit status 2 when any
    file has a problem.

    \b
    Example:
      featx cache verify
    """
    from featx.cache.manage import find_entry, list_entries
    from featx.cache.reader import verify_file
    from featx.core.errors import CacheError

    targets = [find_entry(k, cache_dir) for k in keys] if keys else [e.path for e in list_entries(cache_dir) if not e.partial]
    bad = 0
    for path in targets:
        problems = verify_file(path)
        if problems:
            bad += 1
            for problem in problems:
                click.echo(f"BAD {problem}")
        else:
            click.echo(f"ok  {path}")
    if bad:
        raise CacheError(f"{bad} of {len(targets)} cache files failed verification")

"""``featx extract``: frozen timm backbone -> cached HDF5 features."""

from __future__ import annotations

from typing import Any

import click

from featx.cli.options import cache_dir_option, scheduler_option, shards_option
from featx.extraction.dataconfig import CROP_MODES, INTERPOLATIONS
from featx.extraction.devices import PRECISIONS

#: ExtractConfig fields among the options; the others are ExtractOptions (how it runs)
CONFIG_OPTIONS = (
    "backbone",
    "weights",
    "image_size",
    "interpolation",
    "mean",
    "std",
    "crop_pct",
    "crop_mode",
    "precision",
    "limit",
    "seed",
    "test_fraction",
    "skip_bad",
)


@click.command()
@click.option(
    "-b",
    "--backbone",
    required=True,
    metavar="NAME",
    help="timm model name: vgg16, vgg19, inception_v3, resnet50, any timm model (optionally NAME.TAG), or pixels (the raw-pixels baseline).",
)
@click.option(
    "-d",
    "--dataset",
    default="cifar10",
    show_default=True,
    metavar="SPEC",
    help="cifar10, cifar100, mnist, fashion-mnist, digits, shapes, or imagefolder:PATH.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="FEATX_DATA_DIR",
    show_envvar=True,
    help="Where downloadable data sets live [default: ~/.cache/featx/data].",
)
@click.option(
    "--weights",
    default="pretrained",
    show_default=True,
    metavar="pretrained|random|PATH",
    help="timm's pretrained weights (hub cache honoured), explicit random init, or a .safetensors/.pth file.",
)
@click.option("--image-size", type=click.IntRange(min=1), default=None, help="Model input edge [default: the model's].")
@click.option(
    "--crop-pct",
    type=click.FloatRange(0, 4, min_open=True),
    default=None,
    help="Crop share of the resized image, 1 = no crop [default: the model's].",
)
@click.option("--crop-mode", type=click.Choice(CROP_MODES), default=None, help="How the image is fitted [default: the model's].")
@click.option("--interpolation", type=click.Choice(INTERPOLATIONS), default=None, help="Resize filter [default: the model's].")
@click.option("--mean", default=None, metavar="R,G,B", help="Normalisation mean, 0..1 scale [default: the model's].")
@click.option("--std", default=None, metavar="R,G,B", help="Normalisation std [default: the model's].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per batch [default: 256 on CUDA, 32 on CPU].")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:i]", help="Compute device.")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="Autocast precision; auto = bf16 on CUDA, fp32 on CPU. Features are stored float32.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Keep a class-balanced subset of N images per split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --limit, of splits featx makes, and of random weights.")
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Test share for data sets without a split (digits, class folders).",
)
@click.option(
    "--num-workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes decoding image files [default: 0 on CPUs of up to 4 cores, one per core up to 16 on CUDA].",
)
@click.option(
    "--force", is_flag=True, help="Recompute even when the features are cached (the cached file stays until the new one is complete)."
)
@click.option(
    "--skip-bad", is_flag=True, help="Leave out image files that cannot be decoded (counted and named) instead of stopping at the first."
)
@click.option("--no-download", is_flag=True, help="Never download a missing data set.")
@scheduler_option
@shards_option
@click.option(
    "--shard",
    "shard",
    default=None,
    metavar="K/N",
    help="Compute only shard K (from 0) of N, here, without Dask (one job of a Slurm-style array); the last one stitches the entry.",
)
@cache_dir_option
def extract(dataset: str, scheduler: str | None, shards: int | None, shard: str | None, **options: Any) -> None:
    """Extract pooled pre-logits features of a frozen timm backbone into the cache.

    Prints the path of the cache file. A second run with the same options is a cache
    hit that does not load the model; an interrupted run resumes where it stopped.
    With --scheduler the extraction runs on a Dask cluster's workers (a GPU worker when
    they advertise a GPU resource), which write the cache: it must be on a filesystem
    they share. Sharded or not, the entry and its key are the same.

    \b
    Examples:
      featx extract --backbone resnet50                      # CIFAR-10, ImageNet weights
      featx extract --backbone vgg16 --dataset imagefolder:~/pets --image-size 224 --device cuda --precision bf16
      featx extract --backbone resnet50 --weights ./resnet50.safetensors   # offline, local checkpoint
      featx extract --backbone resnet18 --dataset digits --image-size 64 --limit 200
      featx extract --backbone vit_large_patch14_dinov2 --dataset imagefolder:/data/big --scheduler tcp://head:8786 --shards 8
      featx extract --backbone resnet50 --shard $SLURM_ARRAY_TASK_ID/8      # one shard per array job (--array=0-7)
    """
    from featx.cache.shards import ShardSpec
    from featx.cluster.scheduler import connect, scheduler_address
    from featx.core.errors import ConfigError
    from featx.extraction.config import ExtractConfig
    from featx.extraction.engine import extract as run_extract
    from featx.extraction.engine import extract_shard

    options["download"] = not options.pop("no_download")
    config = ExtractConfig(**{name: options.pop(name) for name in CONFIG_OPTIONS})
    scheduler = scheduler_address(scheduler)
    if shard is not None:
        if shards is not None or scheduler is not None:
            raise ConfigError("--shard K/N runs one shard here, without Dask; drop --shards and --scheduler (or unset FEATX_SCHEDULER)")
        result = extract_shard(dataset, config, ShardSpec.parse(shard), **options)
        click.echo(str(result.stitched or result.path))
        return
    if scheduler is None:
        if shards is not None:
            raise ConfigError(
                "--shards N needs a Dask scheduler (--scheduler ADDRESS or local:N, or FEATX_SCHEDULER); "
                "to compute one shard here, use --shard K/N"
            )
        click.echo(str(run_extract(dataset, config, **options)))
        return
    from featx.cluster.tasks import extract_on_cluster

    with connect(scheduler) as client:
        assert client is not None  # a scheduler was given
        click.echo(str(extract_on_cluster(client, dataset, config, shards=shards, **options)))

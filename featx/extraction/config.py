"""What an extraction is asked for: the config (what changes the numbers) and the options.

* :class:`ExtractConfig`: the backbone, its weights, the preprocessing overrides, the
  precision and the subset of images. Everything here goes into the cache key.
* :class:`ExtractOptions`: where and how it runs (device, batch size, decoding workers,
  folders, ``force``, ``download``). Nothing here changes the features.
* :class:`ExtractRequest`: a data set spec with both, the picklable unit of work that the
  runner and the Dask executor pass around.

All three are :class:`featx.core.schema.Config` models: the Python API, pipeline files and
the CLI are checked by these declarations alone.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from featx.core.devices import check_device
from featx.core.errors import ConfigError
from featx.core.registry import unknown_name_error
from featx.core.schema import Config, Flag, NonNegativeInt, Number, PathText, PositiveInt, Seed, check, prepare
from featx.extraction.dataconfig import CROP_MODES, INTERPOLATIONS, parse_triple
from featx.extraction.datasets.base import DEFAULT_TEST_FRACTION
from featx.extraction.devices import PRECISIONS

WEIGHT_KEYWORDS = ("pretrained", "random")


def _backbone(name: str) -> str:
    if not name.strip():
        raise ConfigError("a backbone name is required, e.g. resnet50")
    return name.strip()


def _precision(value: str) -> str:
    if value not in PRECISIONS:
        raise unknown_name_error(value, PRECISIONS, kind="precision")
    return value


def _choice(choices: tuple[str, ...], what: str) -> Any:
    def validate(value: str) -> str:
        if value not in choices:
            raise ConfigError(f"{what} {value!r} is not supported; use one of {', '.join(choices)}")
        return value

    return check(validate)


def _dataset_spec(spec: str) -> str:
    from featx.extraction.datasets import parse_spec

    parse_spec(spec)
    return spec


#: three numbers, one per channel; also one number for all, or text "R,G,B"
Triple = Annotated[tuple[float, float, float] | None, prepare(parse_triple)]


class ExtractConfig(Config):
    """What to extract: everything that changes the features (all of it is in the cache key).

    Attributes:
        backbone: a timm model name ("resnet50", "vgg16.tv_in1k", "test_resnet").
        weights: "pretrained", "random", or a path to a .safetensors / .pth checkpoint.
        image_size: model input edge; default from the model's pretrained config.
        interpolation: "bilinear", "bicubic" or "nearest"; default from the model.
        mean: per-channel normalisation mean (0..1 scale; three numbers, one for all
            channels, or "R,G,B"); default from the model. Stored as three floats.
        std: per-channel normalisation std, likewise; default from the model.
        crop_pct: crop share of the resized image; default from the model (1.0: no crop).
        crop_mode: "center", "squash" or "border"; default from the model.
        precision: "auto" (bf16 on CUDA, fp32 on CPU), "fp32", "bf16" or "fp16".
        limit: keep a class-balanced subset of this many images per split.
        seed: seed of ``limit``'s subset, of the split for data sets without one, and of
            random weights.
        test_fraction: test share for data sets without a split (digits, class folders).
        skip_bad: leave out image files that cannot be decoded (logged with a count and
            their names, and recorded in the file as ``skipped_images``) instead of
            stopping at the first one. Part of the key: the features differ.

    Raises:
        ConfigError: an invalid value, naming its field.
    """

    backbone: Annotated[str, check(_backbone)]
    weights: PathText = "pretrained"
    image_size: PositiveInt | None = None
    interpolation: Annotated[str, _choice(INTERPOLATIONS, "interpolation")] | None = None
    mean: Triple = None
    std: Triple = None
    crop_pct: Annotated[Number, Field(gt=0, le=4)] | None = None
    crop_mode: Annotated[str, _choice(CROP_MODES, "crop mode")] | None = None
    precision: Annotated[str, check(_precision)] = "auto"
    limit: PositiveInt | None = None
    seed: Seed = 0
    test_fraction: Annotated[Number, Field(gt=0, lt=1)] = DEFAULT_TEST_FRACTION
    skip_bad: Flag = False


class ExtractOptions(Config):
    """How and where an extraction runs; nothing here changes the features.

    Attributes:
        device: "auto", "cpu", "cuda" or "cuda:<index>" (whether CUDA is there is
            checked when the extraction runs).
        batch_size: images per batch (default 256 on CUDA, 32 on CPU).
        num_workers: DataLoader workers decoding image files (default: see
            :func:`featx.extraction.batches.default_workers`).
        data_dir: where downloadable data sets live (default ``~/.cache/featx/data``
            or ``FEATX_DATA_DIR``).
        cache_dir: the feature cache root (default ``features/`` or ``FEATX_CACHE_DIR``).
        download: allow downloading a missing data set.
        force: recompute even when the cache has the entry (the entry in place is
            replaced only once the new one is complete).
    """

    device: Annotated[str, check(check_device)] = "auto"
    batch_size: PositiveInt | None = None
    num_workers: NonNegativeInt | None = None
    data_dir: PathText | None = None
    cache_dir: PathText | None = None
    download: Flag = True
    force: Flag = False


class ExtractRequest(Config):
    """One extraction to carry out: a data set, what to extract from it, and how.

    Attributes:
        dataset: "cifar10", "cifar100", "mnist", "fashion-mnist", "digits" or "imagefolder:PATH".
        config: what to extract.
        options: how and where.
    """

    dataset: Annotated[str, check(_dataset_spec)]
    config: ExtractConfig
    options: ExtractOptions = ExtractOptions()

    @classmethod
    def build(cls, dataset: str, config: ExtractConfig | None, options: dict[str, Any], config_fields: dict[str, Any]) -> ExtractRequest:
        """The request of a verb's arguments: its config, or the config's fields as keywords
        (``featx.extract("digits", backbone="resnet18", limit=100)``), and its options.

        Raises:
            ConfigError: both a config and config fields, or any invalid value.
        """
        if config is None:
            config = ExtractConfig(**config_fields)
        elif config_fields:
            config = config.replace(**config_fields)
        return cls(dataset=dataset, config=config, options=ExtractOptions(**options))

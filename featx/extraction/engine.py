"""Stage one: frozen timm backbone -> pooled pre-logits features -> the HDF5 cache.

Two layers:

* :func:`extract_features` is pure: model + uint8 batches in, float32 feature arrays
  out, in order. No files, no cache, no progress bar (DINO's ``extract_features``).
* :func:`extract` is the orchestration: resolve the backbone, weights, data set and
  data config *without building the model*; compute the cache key; return at once on a
  cache hit; otherwise take the entry's lock, build the model, and write the features
  with :class:`featx.cache.CacheWriter` (chunked, flushed per batch, resumable,
  moved into place atomically). :func:`extract_shard` does the same for one contiguous
  block of rows of a sharded extraction (see :mod:`featx.cache.shards`).

The verbs take the data set, an :class:`~featx.extraction.config.ExtractConfig` and the
options as keywords; the runner and the Dask executor hand over an
:class:`~featx.extraction.config.ExtractRequest` (:func:`extract_request`,
:func:`shard_request`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featx.cache import shards
from featx.cache.layout import LIMIT, SPLITS, WEIGHTS_LOADING, cache_key, entry_path, partial_path
from featx.cache.manage import entry_lock, remove_shards
from featx.cache.reader import is_trusted
from featx.cache.shards import ShardResult, ShardSpec
from featx.cache.writer import CacheWriter, SplitPlan, check_entry_place, discard_partial
from featx.core.console import progress
from featx.core.errors import ConfigError, FeatxError, ImageReadError, WriteError
from featx.core.faults import fault_point
from featx.extraction.backbones import Backbone
from featx.extraction.config import ExtractConfig, ExtractOptions, ExtractRequest
from featx.extraction.dataconfig import DataConfig
from featx.extraction.datasets import ImageDataset, load_dataset
from featx.extraction.devices import describe_device, resolve_device, resolve_precision
from featx.extraction.weights import Weights

if TYPE_CHECKING:  # torch is imported only when extraction runs
    import torch

    from featx.extraction.batches import PixelBatch
    from featx.extraction.preprocess import DevicePreprocess

log = logging.getLogger(__name__)

# the features are timm's pooled pre-logits (create_model(..., num_classes=0)); a new
# pooling option would change this value and so the key
POOLING = "timm-pre-logits"
#: the pixels pseudo backbone's "features": the preprocessed image, flattened
PIXELS_POOLING = "flatten"


# --------------------------------------------------------------------------- pure extraction


def extract_features(
    model: torch.nn.Module, batches: Iterable[PixelBatch], *, preprocess: DevicePreprocess, precision: str
) -> Iterator[np.ndarray]:
    """Run a frozen model over uint8 batches and yield its features, batch by batch.

    Does no I/O. On CUDA the device-to-host copy of one batch's features overlaps the
    next batch's compute (features are yielded one batch late, still in order).

    Args:
        model: a ``torch.nn.Module`` on ``preprocess.device`` returning ``(n, D)`` (any
            extra dimensions are flattened).
        batches: :class:`featx.extraction.batches.PixelBatch` objects, in row order.
        preprocess: a :class:`featx.extraction.preprocess.DevicePreprocess` (resize, crop, normalise).
        precision: "fp32", "bf16" or "fp16" (autocast dtype; features come back float32).

    Yields:
        ``(batch.size, D)`` float32 arrays, one per batch, in order.
    """
    import torch

    device = preprocess.device
    autocast = _autocast(device, precision)
    pending: tuple[torch.Tensor, torch.cuda.Event] | None = None
    with torch.inference_mode():
        for batch in batches:
            inputs = _assemble(batch, preprocess)
            with autocast:
                output = model(inputs)
            features = output.flatten(1).float()
            if device.type != "cuda":
                yield features.numpy()
                continue
            host = features.to("cpu", non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            if pending is not None:
                yield _collect(pending)
            pending = (host, done)
        if pending is not None:
            yield _collect(pending)


def _collect(pending: tuple[torch.Tensor, torch.cuda.Event]) -> np.ndarray:
    host, done = pending
    done.synchronize()
    return host.numpy()


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def _assemble(batch: PixelBatch, preprocess: DevicePreprocess) -> torch.Tensor:
    """Model input for one batch: each size group preprocessed, placed at its rows."""
    import torch

    device = preprocess.device
    groups = batch.groups
    if len(groups) == 1 and len(groups[0].rows) == batch.size:
        return preprocess(groups[0].pixels.to(device, non_blocking=True), final=groups[0].final)
    height, width = preprocess.config.size
    inputs = torch.empty((batch.size, 3, height, width), dtype=torch.float32, device=device).contiguous(memory_format=torch.channels_last)
    for group in groups:
        inputs[group.rows.to(device)] = preprocess(group.pixels.to(device, non_blocking=True), final=group.final)
    return inputs


# --------------------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class ExtractPlan:
    """Everything resolved before any model is built: what to compute and where it goes."""

    request: ExtractRequest
    backbone: Backbone
    weights: Weights
    data_config: DataConfig
    dataset: ImageDataset
    device: torch.device
    precision: str
    key: str
    path: Path
    skipped: tuple[str, ...] = ()

    @property
    def config(self) -> ExtractConfig:
        return self.request.config

    @property
    def options(self) -> ExtractOptions:
        return self.request.options

    def root_attrs(self) -> dict[str, Any]:
        """The cache file's root attributes (``feature_dim`` is added once known)."""
        import timm
        import torch

        data = self.data_config
        return {
            "key": self.key,
            "dataset": self.dataset.name,
            "dataset_spec": self.request.dataset,
            "dataset_identity": dict(self.dataset.identity),
            "dataset_location": self.dataset.location,
            "class_names": list(self.dataset.class_names),
            "backbone": self.backbone_name,
            "architecture": self.backbone.architecture,
            "pretrained_tag": self.backbone.tag,
            "weights": self.weights.identity,
            "weights_mode": self.weights.mode,
            "weights_source": self.weights.source or self.weights.mode,
            "weights_path": str(self.weights.path or ""),
            "input_size": list(data.input_size),
            "interpolation": data.interpolation,
            "mean": list(data.mean),
            "std": list(data.std),
            "crop_pct": data.crop_pct,
            "crop_mode": data.crop_mode,
            "pooling": self.pooling,
            "precision": self.precision,
            LIMIT: self.config.limit if self.config.limit is not None else "",
            "seed": self.config.seed,
            "timm_version": str(timm.__version__),
            "torch_version": str(torch.__version__),
            **({"skipped_images": list(self.skipped)} if self.config.skip_bad else {}),
        }

    @property
    def backbone_name(self) -> str:
        return self.backbone.display_name

    @property
    def pooling(self) -> str:
        return PIXELS_POOLING if self.backbone.is_pixels else POOLING


def plan_request(request: ExtractRequest) -> ExtractPlan:
    """Resolve a request into a plan and its cache key, without building the model.

    The order is chosen so that cheap checks fail first and nothing is written before
    they pass: precision and device, backbone name, weights file, then the data set.

    Raises:
        FeatxError: any invalid input (see :func:`extract`).
    """
    from featx.extraction.backbones import resolve_backbone, resolve_data_config
    from featx.extraction.weights import resolve_weights

    config, options = request.config, request.options
    device = resolve_device(options.device)
    precision = resolve_precision(config.precision, device)
    backbone = resolve_backbone(config.backbone)
    weights = resolve_weights(config.weights, backbone, seed=config.seed)
    data_config = resolve_data_config(
        backbone,
        image_size=config.image_size,
        interpolation=config.interpolation,
        mean=config.mean,
        std=config.std,
        crop_pct=config.crop_pct,
        crop_mode=config.crop_mode,
    )
    dataset = load_dataset(
        request.dataset,
        data_dir=options.data_dir,
        limit=config.limit,
        seed=config.seed,
        download=options.download,
        test_fraction=config.test_fraction,
    )
    identity: dict[str, Any] = {
        "dataset": dict(dataset.identity),
        "model": backbone.display_name,
        "weights": weights.identity,
        "data_config": data_config.as_dict(),
        "pooling": PIXELS_POOLING if backbone.is_pixels else POOLING,
        "precision": precision,
    }
    if config.skip_bad and _has_files(dataset):
        identity["skip_bad"] = True
    key = cache_key(identity)
    path = entry_path(dataset=dataset.name, backbone=backbone.display_name, key=key, cache_dir=options.cache_dir)
    return ExtractPlan(
        request=request,
        backbone=backbone,
        weights=weights,
        data_config=data_config,
        dataset=dataset,
        device=device,
        precision=precision,
        key=key,
        path=path,
    )


def plan_extraction(
    dataset: str,
    config: ExtractConfig | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
    download: bool = True,
    force: bool = False,
    **config_fields: Any,
) -> ExtractPlan:
    """The plan of :func:`extract` with these arguments (its cache key and path), without
    building the model or computing anything.

    Raises:
        FeatxError: as :func:`extract`.
    """
    options = {
        "data_dir": data_dir,
        "cache_dir": cache_dir,
        "device": device,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "download": download,
        "force": force,
    }
    return plan_request(ExtractRequest.build(dataset, config, options, config_fields))


def extract(
    dataset: str,
    config: ExtractConfig | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
    download: bool = True,
    force: bool = False,
    **config_fields: Any,
) -> Path:
    """Extract (or find in the cache) a backbone's features of a data set.

    Example::

        path = featx.extract("cifar10", featx.ExtractConfig(backbone="resnet50"), device="cuda")
        path = featx.extract("imagefolder:~/pets", backbone="resnet18", image_size=160, limit=500)
        X, y, classes = featx.load_features(path, "train")

    Args:
        dataset: "cifar10", "cifar100", "mnist", "fashion-mnist", "digits" or "imagefolder:PATH".
        config: what to extract (an :class:`ExtractConfig`); or give its fields as
            keywords (``backbone=``, ``weights=``, ``image_size=``, ``limit=``, ...),
            which also override a given config.
        data_dir: where downloadable data sets live (default ``~/.cache/featx/data`` or
            ``FEATX_DATA_DIR``).
        cache_dir: the feature cache root (default ``features/`` or ``FEATX_CACHE_DIR``).
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:<index>".
        batch_size: images per batch (default 256 on CUDA, 32 on CPU).
        num_workers: processes decoding image files (default: see
            :func:`featx.extraction.batches.default_workers`).
        download: allow downloading a missing data set.
        force: recompute even when cached (the cached entry stays until the new one is complete).

    Returns:
        The path of the complete cache file (``<cache>/<dataset>/<backbone>__<key>.h5``).

    Raises:
        UnknownNameError: unknown backbone, data set or precision (with suggestions).
        ConfigError: an invalid option, naming its field.
        DatasetError: the data set is missing or malformed (ImageReadError names a file).
        WeightsError: the weights cannot be obtained.
        DeviceError: CUDA asked for but not available.
    """
    options = {
        "data_dir": data_dir,
        "cache_dir": cache_dir,
        "device": device,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "download": download,
        "force": force,
    }
    path, _ = extract_request(ExtractRequest.build(dataset, config, options, config_fields))
    return path


def extract_request(request: ExtractRequest) -> tuple[Path, bool]:
    """Carry out one :class:`ExtractRequest` (the task of ``featx run`` and of a Dask worker).

    Returns:
        The path of the complete cache file, and whether it was a cache hit (no model built).

    Raises:
        FeatxError: as :func:`extract`.
    """
    return extract_planned(plan_request(request))


def extract_planned(plan: ExtractPlan) -> tuple[Path, bool]:
    """Carry out a plan made by :func:`plan_extraction` (``featx run`` plans first, then extracts).

    Returns:
        The path of the complete cache file, and whether it was a cache hit (no model
        was built).

    Raises:
        FeatxError: as :func:`extract`.
    """
    check_entry_place(plan.path)  # a file of someone else's there: refused before images are read or a model built
    if is_cache_hit(plan):
        log.info("cache hit: %s", plan.path)
        return plan.path, True
    # the model is built (and tried once) before the cache folder is touched, so that
    # missing weights or an input size the model refuses leave nothing behind (at the
    # price of a wasted load when another process is extracting this entry right now)
    plan = without_bad_images(plan)
    engine = _prepare(plan)
    fault_point("extract.model_loaded")
    with entry_lock(plan.path, on_wait=lambda: log.info("another featx process is extracting %s; waiting for it", plan.path.name)):
        fault_point("extract.locked")
        if plan.options.force:
            _discard(plan.path)
        elif is_trusted(plan.path, then="extracting again"):  # finished by the process we waited for
            log.info("cache hit: %s", plan.path)
            return plan.path, True
        return _run(plan, engine), False


def is_cache_hit(plan: ExtractPlan) -> bool:
    """Whether the plan's entry is complete and trusted (and not to be redone with ``force``)."""
    return not plan.options.force and is_trusted(plan.path, then="extracting again")


def _discard(path: Path) -> None:
    """--force: start from an empty partial file. The entry in place stays readable
    until the new one replaces it, so a failed recomputation (a full disk) loses nothing."""
    stale = partial_path(path)
    if os.path.lexists(stale):
        log.info("--force: removing %s", stale)
        discard_partial(path)


def _has_files(dataset: ImageDataset) -> bool:
    return any(split.files is not None for split in dataset.splits.values())


def without_bad_images(plan: ExtractPlan) -> ExtractPlan:
    """With ``skip_bad``, the plan without the image files that do not decode.

    Every image file is decoded once to find them (only when features are computed,
    never for a cache hit); their names go into the file's ``skipped_images``.

    Raises:
        DatasetError: a split has no readable image left.
    """
    if not plan.config.skip_bad or not _has_files(plan.dataset):
        return plan
    from concurrent.futures import ThreadPoolExecutor

    from featx.extraction.batches import readable_image

    splits, skipped = {}, []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for name, split in plan.dataset.splits.items():
            files = split.files or ()
            ok = np.fromiter(pool.map(readable_image, files), dtype=bool, count=len(files))
            skipped += [files[i] for i in np.flatnonzero(~ok)]
            if files and not ok.any():
                raise ImageReadError(f"none of the {len(files)} {name} images in {plan.dataset.location} can be decoded")
            splits[name] = split.take(np.flatnonzero(ok))
    if not skipped:
        return plan
    root = plan.dataset.location
    names = [os.path.relpath(path, root) if root else path for path in skipped]
    log.warning("--skip-bad: skipped %d unreadable image(s): %s%s", len(names), ", ".join(names[:5]), ", ..." if len(names) > 5 else "")
    return dataclasses.replace(plan, dataset=dataclasses.replace(plan.dataset, splits=splits), skipped=tuple(names))


@dataclass(frozen=True)
class _Engine:
    """The built model, its preprocessing, and the feature dimension it produces."""

    model: torch.nn.Module
    preprocess: DevicePreprocess
    dim: int
    #: how the weights were adapted to the model, in words (empty when they loaded as they were)
    weights_notes: tuple[str, ...] = ()


def _prepare(plan: ExtractPlan) -> _Engine:
    """Build the frozen backbone on the plan's device (channels-last) and measure its
    feature dimension with one forward pass on a blank image (vgg16 gives 4096
    pre-logits features although its ``num_features`` says 512). Tunes malloc once the
    weights are in place (:func:`featx.extraction.allocator.tune_malloc`): building and
    loading the model frees large buffers that a raised trim threshold would keep.

    Raises:
        WeightsError: the weights cannot be obtained.
        ConfigError: the model cannot run at the configured input size.
    """
    import torch

    from featx.extraction.allocator import tune_malloc
    from featx.extraction.batches import PixelBatch, PixelGroup
    from featx.extraction.models import fold_batchnorm, load_backbone
    from featx.extraction.preprocess import DevicePreprocess

    started = time.perf_counter()
    loaded = load_backbone(plan.backbone, plan.weights, image_size=plan.data_config.size)
    for note in loaded.notes:
        log.info("%s weights: %s", plan.backbone_name, note)
    model = fold_batchnorm(loaded.model)
    model = model.to(plan.device).to(memory_format=torch.channels_last)
    tune_malloc()
    if plan.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
    preprocess = DevicePreprocess(plan.data_config, plan.device)
    height, width = plan.data_config.size
    blank = PixelBatch(
        start=0,
        size=1,
        groups=[
            PixelGroup(rows=torch.zeros(1, dtype=torch.int64), pixels=torch.zeros((1, height, width, 3), dtype=torch.uint8), final=True)
        ],
    )
    try:
        (features,) = list(extract_features(model, [blank], preprocess=preprocess, precision=plan.precision))
    except torch.cuda.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, AssertionError) as error:  # timm asserts input sizes
        reason = " ".join(str(error).split())[:200]
        native = plan.backbone.pretrained_cfg.get("input_size")
        raise ConfigError(
            f"{plan.backbone_name} cannot run on {height}x{width} input ({reason}); try its own size{f' (--image-size {native[-1]})' if native else ''}"
        ) from error
    log.info(
        "%s (%s) ready on %s in %.1f s",
        plan.backbone_name,
        plan.weights.identity,
        describe_device(plan.device),
        time.perf_counter() - started,
    )
    return _Engine(model=model, preprocess=preprocess, dim=int(features.shape[1]), weights_notes=loaded.notes)


def _run(plan: ExtractPlan, engine: _Engine) -> Path:
    """Write every split with the engine's model; the caller holds the entry's lock."""
    rows = {name: (0, len(plan.dataset.splits[name])) for name in SPLITS}
    path = _write(plan, engine, path=plan.path, rows=rows)
    stale = remove_shards(plan.path)  # an earlier sharded extraction's files, replaced by this one
    if stale:
        log.info("removed %d shard file(s) of an earlier sharded extraction of %s", len(stale), plan.path.name)
    log.info("wrote %s", path)
    return path


def _write(
    plan: ExtractPlan,
    engine: _Engine,
    *,
    path: Path,
    rows: Mapping[str, tuple[int, int]],
    attrs: Mapping[str, Any] | None = None,
    label: str = "",
) -> Path:
    """Write rows ``[start, stop)`` of each split into the cache file ``path``.

    Args:
        plan: the extraction.
        engine: the built model.
        path: the file to write (the entry, or one shard's file); the caller holds its lock.
        rows: split name -> ``(start, stop)`` rows of the data set's split.
        attrs: root attributes added to the plan's (a shard's index and rows).
        label: added to the progress bar's description.

    Returns:
        ``path``, complete and moved into place.
    """
    from featx.extraction.batches import iter_batches

    device = plan.device
    model, preprocess, dim = engine.model, engine.preprocess, engine.dim
    batch_size = plan.options.batch_size or (256 if device.type == "cuda" else 32)
    workers = _decoding_workers(plan)
    splits = {name: SplitPlan(stop - start, dim) for name, (start, stop) in rows.items()}
    root = {**plan.root_attrs(), "feature_dim": dim, WEIGHTS_LOADING: "; ".join(engine.weights_notes), **(attrs or {})}
    try:
        with CacheWriter(path, root_attrs=root, splits=splits) as writer:
            for name, (first, last) in rows.items():
                if writer.is_complete(name):
                    continue
                split = plan.dataset.splits[name].rows(first, last)
                start = writer.n_done(name)
                batches = iter_batches(
                    split,
                    config=plan.data_config,
                    batch_size=batch_size,
                    start=start,
                    num_workers=workers,
                    pin_memory=device.type == "cuda",
                )
                features = extract_features(model, batches, preprocess=preprocess, precision=plan.precision)
                with progress(total=len(split), initial=start, desc=f"{plan.backbone_name} {plan.dataset.name} {name}{label}") as bar:
                    row, tick = start, time.perf_counter()
                    for block in features:
                        now = time.perf_counter()
                        writer.write_rows(name, row, block, split.labels[row : row + len(block)], seconds=now - tick)
                        row, tick = row + len(block), now
                        bar.update(len(block))
                writer.finish_split(name, device=describe_device(device))
                info = writer.file[name].attrs
                log.info("%s%s: %d images, %.0f images/s", name, label, len(split), float(info["images_per_second"]))
            return writer.commit()
    except WriteError as error:
        partial = partial_path(path)
        if partial.exists():
            raise WriteError(
                f"{error}; the rows written so far are kept in {partial.name} and the same command resumes them "
                f"(or remove them with `featx cache rm {plan.key}`)"
            ) from error
        raise
    except FeatxError:
        # bad input (an unreadable image): the partial rows describe a data set the user
        # must fix first, and fixing it changes the key; leave nothing behind
        with contextlib.suppress(FeatxError):
            discard_partial(path)
        raise
    except KeyboardInterrupt:
        log.warning("interrupted: rows written so far are kept in %s; run the same command again to resume", partial_path(path).name)
        raise


def _decoding_workers(plan: ExtractPlan) -> int:
    """DataLoader processes for image files; none inside a daemonic process.

    Dask's worker processes are daemons by default, and a daemon cannot start child
    processes: there the files are decoded in-process, with a hint to start the
    workers with ``DASK_DISTRIBUTED__WORKER__DAEMON=False``.
    """
    from featx.extraction.batches import default_workers

    requested = plan.options.num_workers
    workers = default_workers(plan.device) if requested is None else requested
    has_files = any(split.files is not None for split in plan.dataset.splits.values())
    if workers and has_files and multiprocessing.current_process().daemon:
        log.warning(
            "decoding image files in-process: this is a daemonic process (a Dask worker), which cannot start "
            "DataLoader workers; start the Dask workers with DASK_DISTRIBUTED__WORKER__DAEMON=False to decode in parallel"
        )
        return 0
    return workers


# --------------------------------------------------------------------------- one shard


def extract_shard(
    dataset: str,
    config: ExtractConfig,
    shard: ShardSpec,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
    download: bool = True,
    force: bool = False,
    stitch: bool = True,
) -> ShardResult:
    """Compute shard ``K`` of ``N`` of an extraction into its own cache file.

    The shard holds rows ``shard.rows(n)`` of every split (contiguous blocks, see
    :func:`featx.cache.shards.shard_bounds`), written crash-safely beside the entry
    (``<cache>/<dataset>/.shards/<backbone>__<key>/shard-K-of-N.h5``, resumable like any
    cache file); only that block's images are read. The key is the unsharded
    extraction's key. This is ``featx extract --shard K/N`` (one shard of a Slurm-style
    array, no Dask) and the task that :mod:`featx.cluster` runs on Dask workers.

    Example::

        for k in range(4):                      # or one per array job
            result = extract_shard("cifar10", ExtractConfig(backbone="resnet50"), ShardSpec(k, 4))
        result.stitched                         # the entry, stitched by the last shard

    Args:
        dataset, config: as :func:`extract`.
        shard: which block (``ShardSpec(index, count)``, 0-based).
        data_dir, cache_dir, device, batch_size, num_workers, download: as :func:`extract`.
        force: recompute this shard.
        stitch: when this shard completes the set, stitch the entry (the Dask path
            stitches in a task of its own instead).

    Returns:
        A :class:`~featx.cache.shards.ShardResult`; nothing is computed when the entry is
        already in the cache (sharded or not) or this shard's file is complete.

    Raises:
        FeatxError: as :func:`extract`; CacheError when stitching finds a shard unusable.
    """
    options = {
        "data_dir": data_dir,
        "cache_dir": cache_dir,
        "device": device,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "download": download,
        "force": force,
    }
    return shard_request(ExtractRequest.build(dataset, config, options, {}), shard, stitch=stitch)


def shard_request(request: ExtractRequest, shard: ShardSpec, *, stitch: bool = True) -> ShardResult:
    """:func:`extract_shard` of a request (the shard task of a Dask worker)."""
    plan = plan_request(request)
    force = request.options.force
    final, target = plan.path, shard.path(plan.path)
    check_entry_place(final)  # as extract_planned: no shard computed for an entry that cannot be written
    if not force and is_trusted(final, then="extracting again"):
        log.info("cache hit: %s", final)
        return ShardResult(final=final, path=target, key=plan.key, shard=shard, computed=False, stitched=final)
    plan = without_bad_images(plan)  # every shard finds the same ones, so the blocks agree
    sizes = {name: len(plan.dataset.splits[name]) for name in SPLITS}

    def done() -> bool:
        return shards.shard_is_done(target, key=plan.key, shard=shard, sizes=sizes)

    computed = force or not done()
    if computed:
        engine = _prepare(plan)
        with entry_lock(target, on_wait=lambda: log.info("another featx process is computing %s; waiting for it", target.name)):
            if force:
                _discard(target)
            computed = force or not done()  # finished by the process we waited for?
            if computed:
                _write(
                    plan,
                    engine,
                    path=target,
                    rows={name: shard.rows(n) for name, n in sizes.items()},
                    attrs=shard.attrs(sizes),
                    label=f" shard {shard}",
                )
                log.info("wrote %s", target)
    if not computed:
        log.info("shard %s of %s is complete already", shard, final.name)
    stitched = shards.stitch_if_complete(final, shard.count, force=computed) if stitch else None
    return ShardResult(final=final, path=target, key=plan.key, shard=shard, computed=computed, stitched=stitched)

"""Thumbnails of the test images behind cache rows, for the report's error strips.

Row ``i`` of a split in a cache file is image ``i`` of that split as the data set loader
returns it (after the seeded, class-balanced ``--limit`` subset, both recorded in the
file's attributes): the file's ``dataset_spec``, ``limit``, ``seed`` and
``dataset_identity`` name the source image of every row. :func:`row_thumbnails` loads
the data set again (never downloading) and checks that its identity is the one the
features were made from before it draws anything: a changed image folder gives no
thumbnails rather than wrong ones.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from featx.core.errors import FeatxError
from featx.extraction.datasets import ImageDataset

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 64


def row_thumbnails(
    attrs: Mapping[str, Any], rows: Sequence[int], *, data_dir: str | os.PathLike[str] | None = None, size: int = THUMBNAIL_SIZE
) -> dict[int, bytes]:
    """PNG thumbnails of the test images at ``rows`` of a feature file with these root attributes.

    The data set is looked up in ``data_dir`` (default as ``featx extract``), then where
    the features were read from; it is loaded once per spec, folder, limit and seed and
    kept for the next call (the two most recent), so a report's runs do not read it again.

    Args:
        attrs: the cache file's root attributes (a run record's ``features.attrs``).
        rows: row indices of the test split.
        data_dir: where downloadable data sets live.
        size: the longer side of a thumbnail, in pixels.

    Returns:
        row -> PNG bytes; empty when the images cannot be found or are not the ones the
        features were made from (another content fingerprint, skipped images), which is
        logged.
    """
    from PIL import Image

    spec = str(attrs.get("dataset_spec") or "")
    if not spec or attrs.get("skipped_images"):
        return {}
    limit = attrs.get("limit")
    wanted_identity = dict(attrs.get("dataset_identity") or {})
    dataset = None
    for folder in _data_dirs(data_dir, str(attrs.get("dataset_location") or "")):
        try:
            found = _load(spec, folder, int(limit) if limit not in (None, "") else None, int(attrs.get("seed") or 0))
        except (FeatxError, OSError, ValueError) as error:
            log.info("no thumbnails for %s from %s: %s", spec, folder or "the default data dir", error)
            continue
        if dict(found.identity) == wanted_identity:
            dataset = found
            break
        log.info("no thumbnails for %s from %s: its images are not the ones the features were made from", spec, folder)
    if dataset is None:
        return {}
    split = dataset.splits["test"]
    wanted = [int(r) for r in rows if 0 <= int(r) < len(split)]
    out = {}
    for row in wanted:
        try:
            if split.pixels is not None:
                pixels = split.pixels[row]
                image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
            else:
                with Image.open((split.files or ())[row]) as opened:
                    image = opened.convert("RGB")
        except OSError as error:
            log.info("no thumbnail for test row %d: %s", row, error)
            continue
        out[row] = _png(image, size)
    return out


def _data_dirs(given: str | os.PathLike[str] | None, location: str) -> list[str | None]:
    """Where to look for a registered data set: the given folder (else the default), then
    the folder the features were read from and its parent (``--data-dir`` at extraction)."""
    first: list[str | None] = [None if given is None else str(given)]
    return first + ([str(Path(location).parent), location] if location else [])


@functools.lru_cache(maxsize=2)
def _load(spec: str, data_dir: str | None, limit: int | None, seed: int) -> ImageDataset:
    """The data set, loaded once for all the runs of a report (a table's runs share it)."""
    from featx.extraction.datasets import load_dataset

    return load_dataset(spec, data_dir=data_dir, limit=limit, seed=seed, download=False)


def _png(image: Any, size: int) -> bytes:
    """``image`` scaled so its longer side is ``size`` (nearest neighbour when enlarging), as PNG."""
    from PIL import Image

    scale = size / max(image.size)
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    shape = tuple(max(1, round(side * scale)) for side in image.size)
    buffer = io.BytesIO()
    image.resize(shape, resample).save(buffer, format="PNG")
    return buffer.getvalue()

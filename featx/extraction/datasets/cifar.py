"""CIFAR-10 and CIFAR-100 in their standard python-pickle format.

Accepted on disk, in ``--data-dir``: the extracted ``cifar-10-batches-py`` /
``cifar-100-python`` folder, or the ``.tar.gz`` it comes in (extracted once, beside it),
or ``--data-dir`` pointing at the extracted folder itself. When none is there the
tarball is downloaded from the authors' address and checked against its published MD5.

Each pickle holds ``b"data"``: ``(n, 3072)`` uint8 in R, G, B planes of 32 x 32, and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100); the class names are in
``batches.meta`` / ``meta``. Fingerprint: sha256 of the pickle files' bytes, which are
read anyway (180 MB hash in about 0.1 s here), so a changed file is a new cache key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featx.core.errors import DatasetError
from featx.extraction.datasets.base import DatasetRequest, ImageDataset, ImageSplit
from featx.extraction.datasets.download import Resource, fetch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps what."""

    name: str
    folder: str
    resource: Resource
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes


CIFAR10 = CifarLayout(
    name="cifar10",
    folder="cifar-10-batches-py",
    resource=Resource(
        "cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",), "c58f30108f718f92721af3b95e74349a"
    ),
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key=b"labels",
    names_key=b"label_names",
)

CIFAR100 = CifarLayout(
    name="cifar100",
    folder="cifar-100-python",
    resource=Resource(
        "cifar-100-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",), "eb9058c3a382ffc7106e4002c42a8d85"
    ),
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key=b"fine_labels",
    names_key=b"fine_label_names",
)


def load_cifar10(request: DatasetRequest) -> ImageDataset:
    """CIFAR-10 (50,000 + 10,000 images of 32 x 32, 10 classes); see the module doc."""
    return load_cifar(CIFAR10, request.data_dir, download=request.download)


def load_cifar100(request: DatasetRequest) -> ImageDataset:
    """CIFAR-100 (50,000 + 10,000 images of 32 x 32, 100 fine classes); see the module doc."""
    return load_cifar(CIFAR100, request.data_dir, download=request.download)


def load_cifar(layout: CifarLayout, data_dir: Path, *, download: bool) -> ImageDataset:
    """Read one CIFAR variant from ``data_dir`` (downloading the tarball if allowed).

    Raises:
        DatasetError: missing and not downloadable, or a file is not in the CIFAR format.
    """
    folder = _locate(layout, data_dir, download=download)
    digest = hashlib.sha256()
    meta = _unpickle(folder / layout.meta_file, layout, digest)
    names = meta.get(layout.names_key)
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{layout.name}: {folder / layout.meta_file} has no {layout.names_key.decode()} list; {_hint(layout, data_dir)}")
    class_names = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    splits = {
        "train": _read_batches(folder, layout.train_files, layout, len(class_names), digest),
        "test": _read_batches(folder, layout.test_files, layout, len(class_names), digest),
    }
    return ImageDataset(
        name=layout.name,
        class_names=class_names,
        splits=splits,
        identity={"dataset": layout.name, "format": "cifar-python", "fingerprint": digest.hexdigest()},
        location=str(folder),
    )


def _hint(layout: CifarLayout, data_dir: Path) -> str:
    return f"put the original {layout.resource.filename} (from {layout.resource.urls[0]}) or its extracted {layout.folder} folder in {data_dir}"


def _locate(layout: CifarLayout, data_dir: Path, *, download: bool) -> Path:
    """The extracted folder, extracting (and first downloading) the tarball when needed."""
    if not data_dir.exists() and not download:
        raise DatasetError(f"{layout.name}: data directory {data_dir} does not exist; {_hint(layout, data_dir)}")
    if data_dir.is_file():
        raise DatasetError(f"{layout.name}: --data-dir {data_dir} is a file, not a folder; {_hint(layout, data_dir.parent)}")
    for candidate in (data_dir / layout.folder, data_dir):
        if (candidate / layout.meta_file).is_file():
            return candidate
    if (data_dir / layout.folder).exists():
        raise DatasetError(f"{layout.name}: {data_dir / layout.folder} has no {layout.meta_file}; {_hint(layout, data_dir)}")
    archive = fetch(
        layout.resource, data_dir, download=download, what=layout.name, alternative=f" (or its extracted {layout.folder} folder)"
    )
    return _extract(archive, layout, data_dir)


def _extract(archive: Path, layout: CifarLayout, data_dir: Path) -> Path:
    """Unpack the files CIFAR needs from ``archive`` into ``data_dir/<folder>``, atomically.

    Only the expected members are read (by name), so a hostile archive cannot write
    outside the folder.
    """
    wanted = {f"{layout.folder}/{name}" for name in (*layout.train_files, *layout.test_files, layout.meta_file)}
    final = data_dir / layout.folder
    log.info("extracting %s", archive)
    staging = Path(tempfile.mkdtemp(prefix=f".{layout.folder}.", dir=data_dir))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
                missing = sorted(wanted - set(members))
                if missing:
                    raise DatasetError(
                        f"{layout.name}: {archive} lacks {', '.join(missing)}; it is not the CIFAR python tarball; {_hint(layout, data_dir)}"
                    )
                for name in sorted(wanted):
                    source = tar.extractfile(members[name])
                    if source is None:
                        raise DatasetError(f"{layout.name}: cannot read {name} from {archive}")
                    with source, open(staging / Path(name).name, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DatasetError(
                f"{layout.name}: {archive} is not a readable tar.gz ({error}); delete it and try again, or {_hint(layout, data_dir)}"
            ) from None
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _unpickle(path: Path, layout: CifarLayout, digest: Any) -> dict[bytes, Any]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{layout.name}: cannot read {path} ({error.strerror or error})") from None
    digest.update(path.name.encode() + b"\0" + raw)
    try:
        content = pickle.loads(raw, encoding="bytes")
    except Exception as error:  # any unpickling failure means "not CIFAR"
        raise DatasetError(f"{layout.name}: {path} is not a CIFAR python pickle ({type(error).__name__}: {error})") from None
    if not isinstance(content, dict):
        raise DatasetError(f"{layout.name}: {path} holds a {type(content).__name__}, not the CIFAR dictionary")
    return content


def _read_batches(folder: Path, names: tuple[str, ...], layout: CifarLayout, n_classes: int, digest: Any) -> ImageSplit:
    pixels: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{layout.name}: {path} is missing; the folder is incomplete; {_hint(layout, folder.parent)}")
        batch = _unpickle(path, layout, digest)
        data, batch_labels = batch.get(b"data"), batch.get(layout.label_key)
        if data is None or batch_labels is None:
            raise DatasetError(f"{layout.name}: {path} lacks b'data' or {layout.label_key!r}")
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(batch_labels):
            raise DatasetError(
                f"{layout.name}: {path} has data {data.dtype} {data.shape} for {len(batch_labels)} labels; expected uint8 (n, 3072)"
            )
        batch_labels = np.asarray(batch_labels, dtype=np.int64)
        if len(batch_labels) and (batch_labels.min() < 0 or batch_labels.max() >= n_classes):
            raise DatasetError(f"{layout.name}: {path} has labels outside 0..{n_classes - 1}")
        pixels.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # R, G, B planes -> HWC
        labels.append(batch_labels)
    return ImageSplit(labels=np.concatenate(labels), pixels=np.ascontiguousarray(np.concatenate(pixels)))

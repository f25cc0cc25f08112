"""Test helpers: tiny data sets in the real on-disk formats (CIFAR pickles, idx, image
folders), a fake Hugging Face hub cache, and per-row cosine similarity."""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """``n`` random 32x32 RGB images as CIFAR rows (R, G, B planes) and labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8), [i % 10 for i in range(n)]


def write_cifar10(folder: Path, *, per_batch: int = 10, n_test: int = 10) -> Path:
    """A ``cifar-10-batches-py`` folder with five train batches and a test batch."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(1, 6):
        data, labels = cifar_images(per_batch, seed=index)
        _dump(folder / f"data_batch_{index}", {b"batch_label": b"training batch", b"data": data, b"labels": labels})
    data, labels = cifar_images(n_test, seed=99)
    _dump(folder / "test_batch", {b"batch_label": b"testing batch", b"data": data, b"labels": labels})
    _dump(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072})
    return folder


def write_cifar100(folder: Path, *, n_train: int = 40, n_test: int = 20) -> Path:
    """A ``cifar-100-python`` folder (``train``, ``test``, ``meta`` with fine labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"class{i:02d}".encode() for i in range(100)]
    for name, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        data, _ = cifar_images(n, seed=seed)
        _dump(folder / name, {b"data": data, b"fine_labels": [i % 100 for i in range(n)], b"coarse_labels": [i % 20 for i in range(n)]})
    _dump(folder / "meta", {b"fine_label_names": names, b"coarse_label_names": [f"super{i}".encode() for i in range(20)]})
    return folder


def _dump(path: Path, content: dict) -> None:
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)


def tar_folder(folder: Path, archive: Path) -> Path:
    """Pack ``folder`` into ``archive`` (.tar.gz) under its own name, as the CIFAR tarballs are."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file: magic (0x08 = ubyte, n dims), big-endian sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_set(folder: Path, *, n_train: int = 30, n_test: int = 20, gz: bool = True, seed: int = 0) -> Path:
    """The four MNIST-style idx files (gzipped as published, or raw)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        files = {
            f"{prefix}-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)),
            f"{prefix}-labels-idx1-ubyte": idx_bytes(np.arange(n, dtype=np.uint8) % 10),
        }
        for name, raw in files.items():
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return folder


def write_image(path: Path, *, size: tuple[int, int] = (32, 32), mode: str = "RGB", seed: int = 0, fmt: str | None = None) -> Path:
    """A smooth random image (``size`` = width, height) in ``mode``, saved by extension."""
    rng = np.random.default_rng(seed)
    width, height = size
    small = rng.integers(0, 256, size=(max(height // 4, 2), max(width // 4, 2), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.BILINEAR).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def write_image_folder(
    root: Path,
    *,
    classes: tuple[str, ...] = ("cat", "dog", "owl"),
    per_class: dict[str, int] | None = None,
    split: bool = True,
    size: tuple[int, int] = (32, 32),
    ext: str = ".png",
) -> Path:
    """``root/train/<class>/*`` + ``root/test/<class>/*`` (``split``) or ``root/<class>/*``."""
    counts = per_class or {"train": 6, "test": 3}
    seed = 0
    for split_name, n in counts.items():
        for cls in classes:
            for i in range(n):
                base = root / split_name / cls if split else root / cls
                write_image(base / f"{split_name}_{i:03d}{ext}", size=size, seed=seed)
                seed += 1
    return root


def fake_hub_cache(hub: Path, repo_id: str, state_dict: dict, *, revision: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Lay out ``state_dict`` as huggingface_hub caches a download of ``repo_id``:
    ``<hub>/models--<org>--<name>/refs/main`` naming ``snapshots/<revision>/model.safetensors``."""
    from safetensors.torch import save_file

    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    save_file(state_dict, str(repo / "snapshots" / revision / "model.safetensors"))
    return repo


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``: ``(n,)``."""
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def unzip_cifar_subset(zip_path: Path, folder: Path, per_class: dict[str, int]) -> Path:
    """The first ``per_class[split]`` images of every class of each split of the CIFAR-10 JPEG
    zip (``cifar10-jpg/<split>/<class>/<file>.jpg``), unzipped into ``folder``; returns the image folder."""
    import zipfile

    taken: dict[tuple[str, str], int] = {}
    with zipfile.ZipFile(zip_path) as zipped:
        for member in sorted(zipped.namelist()):
            parts = member.split("/")
            if len(parts) != 4 or not parts[3].endswith(".jpg") or parts[1] not in per_class:
                continue
            if taken.get((parts[1], parts[2]), 0) < per_class[parts[1]]:
                taken[(parts[1], parts[2])] = taken.get((parts[1], parts[2]), 0) + 1
                zipped.extract(member, folder)
    return folder / "cifar10-jpg"


def busy_timm_model(name: str, seed: int) -> Any:
    """A timm model (with its classifier) whose weights and BatchNorm statistics are all
    non-trivial, seeded: a stand-in for pretrained weights that a wrong load would change."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif tensor.is_floating_point():
                tensor.normal_(0.0, 0.1)
    return model.eval()


def features_of(model: Any, images: Any) -> Any:
    """The model's output on ``images`` in eval mode, without autograd."""
    import torch

    with torch.inference_mode():
        return model.eval()(images)

"""Data set sources read tiny files written in each real on-disk format; downloads are
served from a local HTTP server; bad data gives one clear DatasetError."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from featx.core.errors import DatasetError, UnknownNameError
from featx.extraction.datasets import DATASETS, cifar, dataset_name, idx, list_datasets, load_dataset
from featx.extraction.datasets.base import balanced_subset, stratified_split
from featx.extraction.datasets.download import Resource
from tests.fakes import (
    CIFAR10_NAMES,
    cifar_images,
    idx_bytes,
    tar_folder,
    write_cifar10,
    write_cifar100,
    write_idx_set,
    write_image,
    write_image_folder,
)


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over a fresh folder: ``(base_url, folder)``."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """An address on this machine where nothing listens (connection refused at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_source_and_suggests_close_names() -> None:
    assert list_datasets() == sorted(["cifar10", "cifar100", "mnist", "fashion-mnist", "digits", "imagefolder", "shapes"])
    assert all(source.summary for source in DATASETS.values())
    with pytest.raises(UnknownNameError, match="did you mean cifar10"):
        load_dataset("cifar-10")
    with pytest.raises(DatasetError, match="needs a path"):
        load_dataset("imagefolder")
    with pytest.raises(DatasetError, match="takes no path"):
        load_dataset("digits:/somewhere")


def test_dataset_name_needs_no_data() -> None:
    assert dataset_name("cifar10") == "cifar10"
    assert dataset_name("imagefolder:/data/pets/") == "pets"
    assert dataset_name("Fashion-MNIST") == "fashion-mnist"


# --------------------------------------------------------------------------- CIFAR


def test_cifar10_folder_reads_planes_as_rgb(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=10, n_test=7)
    data = load_dataset("cifar10", data_dir=tmp_path, download=False)
    train, test = data.splits["train"], data.splits["test"]
    assert data.class_names == tuple(CIFAR10_NAMES)
    assert train.pixels.shape == (50, 32, 32, 3) and train.pixels.dtype == np.uint8
    assert test.pixels.shape == (7, 32, 32, 3)
    rows, labels = cifar_images(10, seed=1)  # data_batch_1
    assert list(train.labels[:10]) == labels
    # pixel (row 2, column 5) of image 3: R at 2*32+5, G 1024 later, B 2048 later
    assert list(train.pixels[3, 2, 5]) == [rows[3, 69], rows[3, 1024 + 69], rows[3, 2048 + 69]]


def test_cifar10_data_dir_may_be_the_extracted_folder_itself(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "cifar-10-batches-py")
    assert len(load_dataset("cifar10", data_dir=folder, download=False).splits["train"]) == 50


def test_cifar10_tarball_is_extracted_once(tmp_path: Path) -> None:
    source = write_cifar10(tmp_path / "src" / "cifar-10-batches-py")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tar_folder(source, data_dir / "cifar-10-python.tar.gz")
    first = load_dataset("cifar10", data_dir=data_dir, download=False)
    assert (data_dir / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]  # no staging folder left
    second = load_dataset("cifar10", data_dir=data_dir, download=False)
    assert first.identity == second.identity
    np.testing.assert_array_equal(first.splits["test"].pixels, second.splits["test"].pixels)


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    source = write_cifar100(tmp_path / "src" / "cifar-100-python", n_train=40, n_test=20)
    tar_folder(source, tmp_path / "cifar-100-python.tar.gz")
    data = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert len(data.class_names) == 100 and data.class_names[7] == "class07"
    assert data.splits["train"].labels.max() == 39 and len(data.splits["test"]) == 20


def test_cifar_fingerprint_follows_the_content(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path / "cifar-10-batches-py")
    before = load_dataset("cifar10", data_dir=tmp_path, download=False).identity["fingerprint"]
    assert load_dataset("cifar10", data_dir=tmp_path, download=False).identity["fingerprint"] == before
    data, labels = cifar_images(10, seed=123)
    import pickle

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": labels}))
    assert load_dataset("cifar10", data_dir=tmp_path, download=False).identity["fingerprint"] != before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "data_batch_3").unlink(), "data_batch_3 is missing"),
        (lambda f: (f / "data_batch_2").write_bytes(b"not a pickle"), "not a CIFAR python pickle"),
        (
            lambda f: (f / "test_batch").write_bytes(__import__("pickle").dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]})),
            "expected uint8",
        ),
        (
            lambda f: (f / "test_batch").write_bytes(__import__("pickle").dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]})),
            "labels outside",
        ),
    ],
)
def test_malformed_cifar_is_a_clear_error(tmp_path: Path, damage, message: str) -> None:
    folder = write_cifar10(tmp_path / "cifar-10-batches-py")
    damage(folder)
    with pytest.raises(DatasetError, match=message):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_missing_cifar_offline_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset("cifar10", data_dir=tmp_path / "nowhere", download=False)
    message = str(caught.value)
    assert "cifar-10-python.tar.gz" in message and "cifar-10-batches-py" in message and str(tmp_path / "nowhere") in message


def test_not_a_tarball_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DatasetError, match="not a readable tar.gz"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not (tmp_path / "cifar-10-batches-py").exists()


# --------------------------------------------------------------------------- downloads


def _serve_cifar10(served: Path, tmp_path: Path) -> Path:
    return tar_folder(write_cifar10(tmp_path / "src" / "cifar-10-batches-py"), served / "cifar-10-python.tar.gz")


def test_download_verifies_checksum_then_loads(tmp_path: Path, http_server, monkeypatch: pytest.MonkeyPatch) -> None:
    base, served = http_server
    archive = _serve_cifar10(served, tmp_path)
    resource = Resource("cifar-10-python.tar.gz", (closed_port_url() + "a.tar.gz", base + archive.name), md5_of(archive))
    monkeypatch.setattr(cifar, "CIFAR10", dataclasses.replace(cifar.CIFAR10, resource=resource))
    data_dir = tmp_path / "data"
    data = load_dataset("cifar10", data_dir=data_dir)  # the first mirror is down, the second serves
    assert len(data.splits["train"]) == 50
    assert (data_dir / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    assert not list(data_dir.glob("*.download"))


def test_download_with_wrong_checksum_keeps_nothing(tmp_path: Path, http_server, monkeypatch: pytest.MonkeyPatch) -> None:
    base, served = http_server
    archive = _serve_cifar10(served, tmp_path)
    resource = Resource("cifar-10-python.tar.gz", (base + archive.name,), "0" * 32)
    monkeypatch.setattr(cifar, "CIFAR10", dataclasses.replace(cifar.CIFAR10, resource=resource))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("cifar10", data_dir=tmp_path / "data")
    assert not any((tmp_path / "data").iterdir())


def test_offline_download_error_names_the_address_and_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = closed_port_url() + "cifar-10-python.tar.gz"
    monkeypatch.setattr(cifar, "CIFAR10", dataclasses.replace(cifar.CIFAR10, resource=Resource("cifar-10-python.tar.gz", (url,), "0" * 32)))
    with pytest.raises(DatasetError) as caught:
        load_dataset("cifar10", data_dir=tmp_path / "data")
    assert url in str(caught.value) and str(tmp_path / "data" / "cifar-10-python.tar.gz") in str(caught.value)


def test_mnist_downloads_missing_idx_files(tmp_path: Path, http_server, monkeypatch: pytest.MonkeyPatch) -> None:
    base, served = http_server
    write_idx_set(served, n_train=12, n_test=8)
    md5 = {path.name[: -len(".gz")]: md5_of(path) for path in served.glob("*.gz")}
    monkeypatch.setattr(idx, "MNIST", dataclasses.replace(idx.MNIST, mirrors=(base,), md5=md5))
    data = load_dataset("mnist", data_dir=tmp_path / "data")
    assert len(data.splits["train"]) == 12 and len(data.splits["test"]) == 8
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(p.name for p in served.iterdir())


# --------------------------------------------------------------------------- idx, digits


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_sets_read_gzipped_or_raw(tmp_path: Path, name: str, gz: bool) -> None:
    write_idx_set(tmp_path / name, n_train=30, n_test=20, gz=gz)
    data = load_dataset(name, data_dir=tmp_path, download=False)
    train = data.splits["train"]
    assert train.pixels.shape == (30, 28, 28, 1)  # grey, one channel; the device repeats it
    assert list(train.labels[:12]) == [i % 10 for i in range(12)]
    assert len(data.class_names) == 10
    if name == "fashion-mnist":
        assert data.class_names[9] == "Ankle boot"


def test_bad_idx_files_are_clear_errors(tmp_path: Path) -> None:
    folder = write_idx_set(tmp_path / "mnist", gz=False)
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((20, 28, 28), np.uint8))[:-5])
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros(20, np.uint8)))  # a labels file
    with pytest.raises(DatasetError, match="not an idx file of the expected kind"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_digits_is_embedded_grey_and_split_stratified() -> None:
    data = load_dataset("digits")
    train, test = data.splits["train"], data.splits["test"]
    assert len(train) + len(test) == 1797 and abs(len(test) - 1797 * 0.2) < 10
    assert train.pixels.shape[1:] == (8, 8, 1) and train.pixels.max() == 255
    assert set(np.unique(test.labels)) == set(range(10))
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.splits["test"].labels, test.labels)
    other = load_dataset("digits", seed=1)
    assert other.identity != data.identity
    assert not np.array_equal(other.splits["test"].pixels, test.pixels)


def test_shapes_are_drawn_balanced_colour_and_the_same_every_time() -> None:
    data = load_dataset("shapes")
    train, test = data.splits["train"], data.splits["test"]
    assert (len(train), len(test)) == (1200, 600) and train.pixels.shape[1:] == (64, 64, 3)
    assert data.class_names == ("circle", "ring", "square", "triangle", "star", "cross")
    assert np.bincount(train.labels).tolist() == [200] * 6 and np.bincount(test.labels).tolist() == [100] * 6
    assert load_dataset("shapes").identity == data.identity


def test_a_read_only_data_set_goes_through_extraction_without_a_warning(recwarn: pytest.WarningsRecorder) -> None:
    import featx

    featx.extract("shapes", backbone="pixels", limit=12, image_size=8)  # shapes keeps its pixels read-only
    assert not [w for w in recwarn if "not writable" in str(w.message)]


# --------------------------------------------------------------------------- image folders


def test_imagefolder_with_train_and_test(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", classes=("cat", "dog"), per_class={"train": 4, "test": 2})
    data = load_dataset(f"imagefolder:{root}")
    assert data.name == "pets" and data.class_names == ("cat", "dog")
    assert len(data.splits["train"]) == 8 and len(data.splits["test"]) == 4
    assert list(data.splits["test"].labels) == [0, 0, 1, 1]
    assert Path(data.splits["train"].files[0]).name == "train_000.png"


def test_images_in_nested_subfolders_count_for_their_class(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets", classes=("cat", "dog"), per_class={"train": 4, "test": 2})
    nested = root / "train" / "cat" / "2024" / "indoor"
    nested.mkdir(parents=True)
    for image in sorted((root / "train" / "cat").glob("*.png"))[:2]:
        image.rename(nested / image.name)
    data = load_dataset(f"imagefolder:{root}")
    assert data.class_names == ("cat", "dog") and len(data.splits["train"]) == 8
    assert sum("2024/indoor" in f for f in data.splits["train"].files) == 2
    assert list(data.splits["train"].labels) == [0, 0, 0, 0, 1, 1, 1, 1]


def test_imagefolder_of_class_folders_gets_a_seeded_stratified_split(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "flowers", classes=("a", "b", "c"), per_class={"all": 10}, split=False)
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / ".hidden.png").write_bytes(b"")
    first = load_dataset(f"imagefolder:{root}", seed=3)
    assert len(first.splits["train"]) == 24 and len(first.splits["test"]) == 6
    assert np.bincount(first.splits["test"].labels).tolist() == [2, 2, 2]
    assert load_dataset(f"imagefolder:{root}", seed=3).splits["test"].files == first.splits["test"].files
    assert load_dataset(f"imagefolder:{root}", seed=4).splits["test"].files != first.splits["test"].files


def test_imagefolder_fingerprint_sees_changed_files(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pets")
    before = load_dataset(f"imagefolder:{root}").identity["fingerprint"]
    target = root / "test" / "dog" / "test_001.png"
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1_000_000_000))
    assert load_dataset(f"imagefolder:{root}").identity["fingerprint"] != before


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "does not exist"),
        ("file", "is not a directory"),
        ("empty", "no class folders with images"),
        ("train-only", "has train/ but no test/"),
    ],
)
def test_bad_image_folders_are_clear_errors(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "data"
    if layout == "file":
        root.write_text("x")
    elif layout == "empty":
        (root / "cat").mkdir(parents=True)
    elif layout == "train-only":
        write_image(root / "train" / "cat" / "a.png")
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"imagefolder:{root}")


# --------------------------------------------------------------------------- subsets and splits


def test_limit_keeps_a_balanced_seeded_subset_per_split(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=20, n_test=30)
    data = load_dataset("cifar10", data_dir=tmp_path, download=False, limit=25)
    assert len(data.splits["train"]) == 25 and len(data.splits["test"]) == 25
    assert sorted(np.bincount(data.splits["train"].labels, minlength=10)) == [2] * 5 + [3] * 5
    assert data.identity["limit"] == 25
    full = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert data.identity["fingerprint"] == full.identity["fingerprint"] and data.identity != full.identity


def test_balanced_subset_gives_a_small_class_s_share_to_others() -> None:
    labels = np.array([0] * 2 + [1] * 50 + [2] * 50)
    chosen = balanced_subset(labels, 30, seed=0)
    assert np.bincount(labels[chosen]).tolist() == [2, 14, 14]
    assert list(chosen) == sorted(chosen)
    assert len(balanced_subset(labels, 1000, seed=0)) == len(labels)


def test_stratified_split_keeps_every_class_on_both_sides() -> None:
    labels = np.array([0] * 3 + [1] * 20 + [2] * 2)
    train, test = stratified_split(labels, 0.2, seed=0)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    assert set(labels[test]) == {0, 1, 2} and set(labels[train]) == {0, 1, 2}


def test_loading_data_sets_never_imports_torch() -> None:
    import subprocess

    code = "import sys; from featx.extraction.datasets import load_dataset; load_dataset('digits'); print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert result.stdout.strip() == "False"

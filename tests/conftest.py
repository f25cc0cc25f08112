"""Shared test fixtures: every test runs offline, in its own cache/reports/data dirs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

# huggingface_hub reads this when it is imported: set it before anything imports it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR10_JPG_ZIP = SHARED_DATA / "cifar10-jpg.zip"


#: whole files in the slow tier (run by `make test-all` and CI, not by `make test`)
SLOW_FILES = ("test_cluster.py", "test_wheel.py", "test_report_browser.py", "test_extract_realdata.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The reliability suite, the Dask cluster, the wheel, the browser and the real-data
    tier are slow: ``make test`` (``-m "not slow"``) leaves them to ``make test-all``."""
    for item in items:
        path = Path(str(item.fspath))
        if "reliability" in path.parts or path.name in SLOW_FILES or item.get_closest_marker("realdata"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every featx default directory, and the hub cache, into the test's tmp dir."""
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "features"))
    monkeypatch.setenv("FEATX_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("FEATX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FEATX_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("FEATX_SCHEDULER", raising=False)


def make_features(
    n_train: int = 120,
    n_test: int = 60,
    dim: int = 16,
    n_classes: int = 3,
    *,
    seed: int = 0,
    separation: float = 3.0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Gaussian blobs, one per class, as float32 features with int64 labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * separation
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % n_classes
        rng.shuffle(labels)
        features = centres[labels] + rng.normal(size=(n, dim))
        arrays[split] = (features.astype(np.float32), labels.astype(np.int64))
    return arrays


@pytest.fixture
def feature_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write a synthetic, complete cache file in the real layout and return its path."""
    from featx.cache import write_features

    def factory(
        name: str = "synthetic", key: str = "0123456789abcdef", dataset: str = "synthetic", attrs: dict | None = None, **kwargs: object
    ) -> Path:
        arrays = make_features(**kwargs)  # type: ignore[arg-type]
        n_classes = int(max(y.max() for _, y in arrays.values())) + 1
        path = Path(os.environ["FEATX_CACHE_DIR"]) / dataset / f"{name}__{key}.h5"
        return write_features(
            path,
            arrays,
            class_names=[f"class_{i}" for i in range(n_classes)],
            attrs={
                "key": key,
                "dataset": dataset,
                "backbone": name,
                "weights": "random",
                "precision": "fp32",
                "input_size": [3, 32, 32],
                "mean": [0.5, 0.5, 0.5],
                "std": [0.5, 0.5, 0.5],
                "interpolation": "bilinear",
                **(attrs or {}),
            },
        )

    return factory


@pytest.fixture
def cifar10_jpg_zip() -> Path:
    """The shared real CIFAR-10 JPEG zip; skips the test when it is absent."""
    if not CIFAR10_JPG_ZIP.exists():
        pytest.skip(f"real data not present: {CIFAR10_JPG_ZIP}")
    return CIFAR10_JPG_ZIP


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())

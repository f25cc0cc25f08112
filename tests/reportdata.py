"""Synthetic feature files and run records for the report tests (real fits on small blobs)."""

from __future__ import annotations

import os
from pathlib import Path

import featx
from featx.cache import write_features
from tests.conftest import make_features

CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
PRETRAINED = {"weights": "pretrained:timm/resnet50.tv_in1k", "weights_mode": "pretrained", "pretrained_tag": "tv_in1k"}
RANDOM = {"weights": "random:seed=0", "weights_mode": "random", "pretrained_tag": "a1_in1k"}


def features(
    backbone: str,
    key: str,
    *,
    weights: dict,
    dataset: str = "cifar10",
    separation: float = 1.2,
    seed: int = 0,
    class_names: list[str] | None = None,
    identity: dict | None = None,
    size: int = 224,
) -> Path:
    """A complete cache file with the attributes stage one writes."""
    names = class_names or CLASSES
    arrays = make_features(n_train=150, n_test=75, dim=12, n_classes=len(names), separation=separation, seed=seed)
    attrs = {
        "key": key,
        "dataset": dataset,
        "dataset_spec": dataset,
        "backbone": backbone,
        "architecture": backbone.split(".")[0],
        "dataset_identity": identity or {"dataset": dataset, "fingerprint": "f" * 64},
        "dataset_location": f"/data/{dataset}",
        "input_size": [3, size, size],
        "interpolation": "bicubic",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "crop_pct": 1.0,
        "crop_mode": "center",
        "precision": "fp32",
        "limit": "",
        "seed": 0,
        "timm_version": "1.0.31",
        "torch_version": "2.15.0",
        **weights,
    }
    path = Path(os.environ["FEATX_CACHE_DIR"]) / dataset / f"{backbone}__{key}.h5"
    return write_features(path, arrays, class_names=names, attrs=attrs, device="cuda:0 (NVIDIA H200)")


def fit_all(path: Path, *, classifiers: tuple[str, ...] = ("linearsvc", "logreg", "knn")) -> list:
    grids = {
        "linearsvc": {"C": [0.001, 0.01, 0.1]},
        "logreg": {"C": [0.01, 0.1, 1.0]},
        "knn": {"n_neighbors": [1, 3, 5], "metric": ["euclidean"]},
    }
    return [featx.fit(path, clf=clf, grid=grids[clf], cv=3, n_jobs=1, dataset=None) for clf in classifiers]


def two_backbones() -> tuple[Path, Path]:
    """resnet50 (pretrained attributes, well separated) and vgg16 (random weights, less separated), 3 classifiers each."""
    good = features("resnet50.tv_in1k", "1111111111111111", weights=PRETRAINED, separation=1.6, seed=1)
    poor = features("vgg16", "2222222222222222", weights=RANDOM, separation=0.7, seed=2)
    fit_all(good)
    fit_all(poor)
    return good, poor


def digits_backbone() -> Path:
    """Features whose rows are scikit-learn's digits (the data set loads offline), so the
    report can show the misclassified test images: blobs by the true labels of the images."""
    import numpy as np

    from featx.extraction.datasets import load_dataset

    dataset = load_dataset("digits")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 12)) * 0.8
    arrays = {}
    for split in ("train", "test"):
        labels = dataset.splits[split].labels.astype(np.int64)
        arrays[split] = ((centres[labels] + rng.normal(size=(len(labels), 12))).astype(np.float32), labels)
    attrs = {
        "key": "3333333333333333",
        "dataset": "digits",
        "dataset_spec": "digits",
        "backbone": "resnet18",
        "architecture": "resnet18",
        "dataset_identity": dict(dataset.identity),
        "dataset_location": dataset.location,
        "input_size": [3, 224, 224],
        "limit": "",
        "seed": 0,
        **PRETRAINED,
    }
    path = Path(os.environ["FEATX_CACHE_DIR"]) / "digits" / "resnet18__3333333333333333.h5"
    write_features(path, arrays, class_names=list(dataset.class_names), attrs=attrs, device="cpu")
    featx.fit(path, clf="logreg", grid={"C": [0.01, 0.1]}, cv=3, n_jobs=1, dataset=None)
    featx.fit(path, clf="knn", grid={"n_neighbors": [5], "weights": ["uniform"], "metric": ["euclidean"]}, cv=4, n_jobs=1, dataset=None)
    return path

"""scikit-learn's embedded handwritten digits: 1,797 grey 8 x 8 images, no download.

The values 0..16 are scaled to 0..255. There is no official split: a seeded stratified
split (20 % test by default) is made, and its seed and fraction are part of the identity.
Fingerprint: sha256 of the scaled pixels and labels.
"""

from __future__ import annotations

import hashlib

import numpy as np

from featx.extraction.datasets.base import DatasetRequest, ImageDataset, ImageSplit, grey_to_array, stratified_split


def load_digits(request: DatasetRequest) -> ImageDataset:
    """The digits data set as 8 x 8 grey images, split ``1 - test_fraction`` / ``test_fraction``."""
    seed, test_fraction = request.seed, request.test_fraction
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.rint(np.asarray(bunch.images) * (255.0 / 16.0)).astype(np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    fingerprint = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    train, test = stratified_split(labels, test_fraction, seed=seed)
    pixels = grey_to_array(images)
    return ImageDataset(
        name="digits",
        class_names=tuple(str(i) for i in range(10)),
        splits={
            "train": ImageSplit(labels=labels[train], pixels=pixels[train]),
            "test": ImageSplit(labels=labels[test], pixels=pixels[test]),
        },
        identity={"dataset": "digits", "format": "sklearn", "fingerprint": fingerprint, "split_seed": seed, "test_fraction": test_fraction},
        location="sklearn.datasets.load_digits",
    )

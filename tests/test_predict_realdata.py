"""Real-data tier: real CIFAR-10 JPEGs (``../shared/data/cifar10-jpg.zip``, skipped when
absent) labelled by ``featx predict`` get the labels behind the record's test accuracy,
and the export agrees. resnet18 with random weights (labelled: the numbers are not
those of pretrained features; the labels must be the run's, whatever they are)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import featx
from featx.extraction.engine import plan_extraction
from tests.test_extract_realdata import cifar_subset  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.realdata, pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")]

EXTRACT = {"backbone": "resnet18", "weights": "random", "image_size": 64}


def test_real_test_images_get_the_record_s_labels_and_the_export_agrees(cifar_subset: Path, tmp_path: Path) -> None:  # noqa: F811
    dataset = f"imagefolder:{cifar_subset}"
    features = featx.extract(dataset, **EXTRACT)
    record = featx.fit(features, clf="logreg", grid={"C": [0.1]}, cv=2, dataset=None, n_jobs=1)
    result = featx.load_predictor(record.path(), device="cpu").predict(cifar_subset / "test")
    X, y, _ = featx.load_features(features, "test", dataset=None)
    files = list(plan_extraction(dataset, **EXTRACT).dataset.splits["test"].files or ())
    by_path = dict(zip(result.paths, result.indices))
    predicted = np.array([by_path[f] for f in files])
    np.testing.assert_array_equal(predicted, featx.load_model(record).predict(X))
    assert np.mean(predicted == y) == record.test_accuracy

    exported = featx.export_model(record.path(), tmp_path / "cifar.pt")
    from PIL import Image

    batch = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in result.paths]))
    with torch.inference_mode():
        labels, scores = torch.jit.load(str(exported.model)).classify(batch)
    np.testing.assert_allclose(scores.numpy(), result.scores, atol=1e-4)
    np.testing.assert_array_equal(labels.numpy(), result.indices)

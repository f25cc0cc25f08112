"""A fitted image-folder comparison for the predict and export tests: random-weight
``test_resnet`` features (labelled: not pretrained) of a small generated image folder,
and one run of each classifier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from click.testing import CliRunner, Result

import featx
from featx.cli import main
from featx.fitting.records import RunRecord
from tests.fakes import write_image, write_image_folder

#: random weights: these tests check that predictions are right, not that they are good
EXTRACT = {"backbone": "test_resnet", "weights": "random", "image_size": 32}
CLASSIFIERS = ("logreg", "linearsvc", "knn")
GRIDS = {"logreg": {"C": [0.1, 1.0]}, "linearsvc": {"C": [0.01, 0.1]}, "knn": {"n_neighbors": [1, 3], "weights": ["distance"]}}


@dataclass(frozen=True)
class Fitted:
    """Where the fitted comparison lives."""

    root: Path  # the image folder: train/<class>/*, test/<class>/*
    cache_dir: Path
    reports_dir: Path
    features: Path
    records: dict[str, RunRecord]

    def record_path(self, clf: str) -> Path:
        return self.records[clf].path(self.reports_dir)

    def test_split(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The test split's features, labels and files, in the cache's row order."""
        from featx.extraction.engine import plan_extraction

        X, y, _ = featx.load_features(self.features, "test", dataset=None)
        plan = plan_extraction(f"imagefolder:{self.root}", cache_dir=self.cache_dir, **EXTRACT)
        return X, y, list(plan.dataset.splits["test"].files or ())


def fit_comparison(base: Path, *, scales: dict[str, str] | None = None) -> Fitted:
    """Generate the image folder (32 px images, and larger ones that timm's PIL transform
    shrinks), extract it, and fit every classifier with 2-fold CV."""
    root = write_image_folder(base / "pets", per_class={"train": 8, "test": 4})
    for index, cls in enumerate(("cat", "dog")):  # two larger test images take the host-side (PIL) resize
        write_image(root / "test" / cls / f"large_{index}.jpg", size=(60, 48), seed=100 + index)
    cache_dir, reports_dir = base / "features", base / "reports"
    features = featx.extract(f"imagefolder:{root}", cache_dir=cache_dir, batch_size=8, **EXTRACT)
    records = {
        clf: featx.fit(
            features,
            clf=clf,
            grid=GRIDS[clf],
            cv=2,
            scale=(scales or {}).get(clf, "standard"),
            dataset=None,
            cache_dir=cache_dir,
            reports_dir=reports_dir,
            n_jobs=1,
        )
        for clf in CLASSIFIERS
    }
    return Fitted(root=root, cache_dir=cache_dir, reports_dir=reports_dir, features=features, records=records)


def cli(*args: str) -> Result:
    """``featx -q ARGS`` in-process."""
    return CliRunner().invoke(main, ["-q", *args])

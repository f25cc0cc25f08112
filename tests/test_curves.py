"""``featx curve``: data-efficiency curves on cached features, their record, CLI and report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import featx
from featx.cli import main
from featx.core.errors import ConfigError
from featx.fitting.config import FitConfig
from featx.fitting.curves import CurveConfig, balanced_draw, curve_points
from tests.conftest import make_features


def test_accuracy_rises_with_shots_and_repeats_are_reproducible() -> None:
    arrays = make_features(n_train=400, n_test=200, dim=16, n_classes=4, separation=0.5, seed=3)
    config = CurveConfig(fit=FitConfig(clf="logreg", grid={"C": [0.01, 0.1, 1.0]}, cv=3), shots="1,5,50,full", repeats=4)
    points = curve_points(config, *arrays["train"], *arrays["test"])
    means = [p.mean for p in points]
    assert [p.shots for p in points] == [1, 5, 50, "full"]
    assert means[0] < means[1] < means[2] and means[0] < means[3]
    assert [p.n_repeats for p in points] == [4, 4, 4, 1]
    assert points[0].selection == "default" and points[0].params[0] == {"C": 1.0}  # one image per class: nothing to validate on
    assert points[1].selection == "cv-3" and points[2].n_train == [200] * 4
    again = curve_points(config, *arrays["train"], *arrays["test"])
    assert [p.accuracies for p in again] == [p.accuracies for p in points]
    other = curve_points(config.model_copy(update={"fit": config.fit.replace(seed=1)}), *arrays["train"], *arrays["test"])
    assert [p.accuracies for p in other][:2] != [p.accuracies for p in points][:2]


def test_draws_are_class_balanced_and_seeded() -> None:
    y = np.repeat(np.arange(3), [10, 4, 7])
    rows = balanced_draw(y, 5, seed=0, repeat=0)
    assert np.bincount(y[rows]).tolist() == [5, 4, 5]
    assert (rows == balanced_draw(y, 5, seed=0, repeat=0)).all() and not (rows == balanced_draw(y, 5, seed=0, repeat=1)).all()


def test_bad_shots_name_the_field() -> None:
    with pytest.raises(ConfigError, match="shots"):
        CurveConfig(fit=FitConfig(clf="logreg"), shots="0,5")
    with pytest.raises(ConfigError, match="shots"):
        CurveConfig(fit=FitConfig(clf="logreg"), shots="1,many")


def test_cli_json_record_and_report_plot(feature_file: Callable[..., Path]) -> None:
    path = feature_file(name="tiny", n_train=120, n_test=60, dim=8, n_classes=3, separation=0.8, seed=2)
    result = CliRunner().invoke(
        main, ["curve", "--features", str(path), "--clf", "knn", "--k-grid", "1,3", "--shots", "1,2,full", "--repeats", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(p["shots"], p["n_repeats"]) for p in data["points"]] == [(1, 2), (2, 2), ("full", 1)]
    assert all({"shots", "mean", "std", "n_repeats"} <= set(p) for p in data["points"])
    assert data["seed"] == 0 and data["repeats"] == 2 and "draws" in data and "protocol" in data
    featx.fit(path, clf="knn", grid={"n_neighbors": [1, 3]}, cv=3, n_jobs=1)
    files = featx.report()
    page = files.html.read_text()
    assert page.count('data-curves="true"') == 1 and 'id="data-efficiency"' in page
    table = pd.read_csv(files.html.with_name("curves.csv"))
    assert table["shots"].astype(str).tolist() == ["1", "2", "full"] and (table["n_repeats"] == [2, 2, 1]).all()
    bad = CliRunner().invoke(main, ["curve", "--features", str(path), "--clf", "knn", "--shots", "0"])
    assert bad.exit_code == 2 and "--shots" in bad.output

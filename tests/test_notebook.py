"""The Python API as a notebook uses it: short reprs, HTML tables, figures, a DataFrame."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import featx


def test_a_notebook_session(feature_file: Callable[..., Path]) -> None:
    feature_file(name="resnet18", dataset="cifar10", n_train=60, n_test=30)
    logreg = featx.fit("resnet18", clf="logreg", grid={"C": [0.1, 1.0]}, cv=2, n_jobs=1)
    knn = featx.fit("resnet18", clf="knn", grid={"n_neighbors": [1, 3], "metric": ["euclidean"]}, cv=2, n_jobs=1)

    text = repr(logreg)
    assert text.startswith("RunRecord(logreg on resnet18 (cifar10), best C=") and f"test accuracy {logreg.test_accuracy:.4f}" in text
    assert "\n" not in text and len(text) < 160
    page = logreg._repr_html_()
    assert page.startswith("<table><caption>RunRecord(logreg") and "<th>cv mean</th>" in page and page.count("<tr>") >= 2 + 6

    table = featx.compare()
    assert set(table["classifier"]) == {"logreg", "knn"}
    assert set(table["run_key"]) == {logreg.run_key, knn.run_key}
    assert table.loc[table["classifier"] == "knn", "test_accuracy"].item() == pytest.approx(knn.test_accuracy)
    wide = featx.compare(wide=True)
    assert wide.shape == (1, 2) and wide.loc[("cifar10", "resnet18"), "logreg"] == pytest.approx(logreg.test_accuracy)
    assert featx.compare(dataset="digits").empty

    drawn = featx.pca("resnet18", per_class=5)
    scatter, variance = drawn.figures
    assert scatter is drawn.scatter_figure and len(scatter.axes[0].collections) == 3  # one scatter per class
    assert repr(drawn).startswith("PcaResult(resnet18__") and "components hold 90% of the variance" in repr(drawn)
    reused = featx.pca("resnet18", per_class=5, skip_existing=True)
    assert reused.reused and reused.scatter_figure is None
    shown, _ = reused.figures  # the saved PNG, shown
    assert shown.axes[0].images and variance is not None


def test_progress_bars_show_in_a_jupyter_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from featx.core.console import progress

    assert progress(total=3, desc="x").disable  # the test's stderr is not a terminal
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    bar = progress(total=3, desc="x")
    assert not bar.disable
    bar.close()

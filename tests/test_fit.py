"""``featx.fit``: the protocol, the run record and its files, the reloadable model, bad input."""

from __future__ import annotations

import json
import os
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import featx
from featx import cache as cachefile
from featx.core.errors import CacheError, ConfigError, FitError, ReportError, UnknownNameError
from featx.fitting.classifiers import build_pipeline, get_classifier
from featx.fitting.protocol import FitConfig, find_existing, plan_run
from featx.fitting.records import RunRecord, iter_records, load_model, load_record
from featx.fitting.search import cross_validate_grid, grid_points, stratified_folds, transform_fold
from tests.conftest import make_features

FAST = {"n_jobs": 1, "cv": 3}
SMALL_GRIDS = {
    "linearsvc": {"C": [0.001, 0.1, 10]},
    "logreg": {"C": [0.001, 0.1, 10]},
    "knn": {"n_neighbors": [1, 5, 9], "weights": ["uniform", "distance"], "metric": ["euclidean", "cosine"]},
}

#: what the issue asks every record to carry, and the report engineer reads
RECORD_KEYS = {
    "clf",
    "features",
    "grid",
    "cv_results",
    "best_params",
    "cv_best_score",
    "test_accuracy",
    "top5_accuracy",
    "macro_f1",
    "per_class",
    "confusion_matrix",
    "fit_seconds",
    "predict_seconds",
    "seed",
    "featx_version",
    "run_key",
    "class_names",
    "cv",
    "scale",
    "pca",
    "search_seconds",
    "model_file",
    "record_file",
    "schema_version",
}


@pytest.fixture
def overlapping(feature_file: Callable[..., Path]) -> Path:
    """Seven overlapping classes (informative accuracies, and top-5 is not trivial)."""
    return feature_file(name="tiny", n_train=210, n_test=70, dim=12, n_classes=7, separation=0.7, seed=2)


def _reports() -> Path:
    return Path(os.environ["FEATX_REPORTS_DIR"])


def _written() -> list[Path]:
    return sorted(p for p in _reports().rglob("*") if p.is_file()) if _reports().exists() else []


@pytest.mark.parametrize("clf", ["linearsvc", "logreg", "knn"])
def test_every_classifier_end_to_end(overlapping: Path, clf: str) -> None:
    record = featx.fit(overlapping, clf=clf, grid=SMALL_GRIDS[clf], **FAST)
    n_points = int(np.prod([len(v) for v in SMALL_GRIDS[clf].values()]))
    assert len(record.cv_results) == n_points
    assert record.best_params in [p.params for p in record.cv_results]
    best = next(p for p in record.cv_results if p.params == record.best_params)
    assert best.rank == 1 and best.mean == record.cv_best_score == max(p.mean for p in record.cv_results)
    assert all(len(p.fold_scores) == 3 for p in record.cv_results)
    assert 0.3 < record.test_accuracy < 1.0
    assert record.top5_accuracy is not None and record.top5_accuracy >= record.test_accuracy
    assert np.asarray(record.confusion_matrix).shape == (7, 7)
    assert np.asarray(record.confusion_matrix).sum() == 70
    assert np.trace(record.confusion_matrix) == round(record.test_accuracy * 70)
    assert [c.name for c in record.per_class] == [f"class_{i}" for i in range(7)]
    assert sum(c.support for c in record.per_class) == 70
    assert record.features.backbone == "tiny" and record.features.key == "0123456789abcdef"
    assert record.features.attrs["interpolation"] == "bilinear" and record.features.attrs["input_size"] == [3, 32, 32]
    assert record.features.n_train == 210 and record.features.feature_dim == 12

    # the files: record and model beside it, named by dataset, backbone, key, clf, run key
    record_path, model_path = record.path(), record.model_path()
    assert record_path.parent == _reports() / "runs" / "synthetic"
    assert record_path.name == f"tiny__0123456789abcdef__{clf}__{record.run_key}.json"
    assert model_path == record_path.with_suffix(".joblib")
    assert load_record(record_path) == record

    # the saved Pipeline reloads and predicts the test split as scored
    model = load_model(record_path)
    assert isinstance(model, Pipeline)
    X_test, y_test = cachefile.read_split(overlapping, "test")
    assert np.mean(model.predict(X_test) == y_test) == record.test_accuracy
    # the record names parameters as users do (k-NN's `vote`), the estimator as scikit-learn does (`weights`)
    chosen = {get_classifier(clf).param(name).name: value for name, value in record.best_params.items()}
    assert model.get_params()["clf"].get_params() == {**model.get_params()["clf"].get_params(), **chosen}


def test_record_matches_gridsearchcv_end_to_end(overlapping: Path) -> None:
    """Best point, CV scores, and test accuracy of the refit equal a plain GridSearchCV's."""
    record = featx.fit(overlapping, clf="linearsvc", grid=SMALL_GRIDS["linearsvc"], scale="l2", pca=6, **FAST)
    X, y = cachefile.read_split(overlapping, "train")
    X_test, y_test = cachefile.read_split(overlapping, "test")
    pipeline = build_pipeline(get_classifier("linearsvc"), scale="l2", pca=6, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(pipeline, {"clf__C": [0.001, 0.1, 10.0]}, cv=stratified_folds(y, 3, 0)).fit(X, y)
    assert record.best_params == {"C": search.best_params_["clf__C"]}
    np.testing.assert_array_equal([p.mean for p in record.cv_results], search.cv_results_["mean_test_score"])
    np.testing.assert_array_equal([p.std for p in record.cv_results], search.cv_results_["std_test_score"])
    assert record.test_accuracy == search.score(X_test, y_test)


def test_record_json_round_trip_and_schema(overlapping: Path) -> None:
    record = featx.fit(overlapping, clf="knn", grid={"n_neighbors": [3]}, **FAST)
    data = json.loads(record.path().read_text())
    assert set(data) >= RECORD_KEYS
    assert {"path", "key", "dataset", "backbone", "weights", "feature_dim", "n_train", "n_test", "attrs", "splits"} <= set(data["features"])
    assert set(data["cv_results"][0]) == {"params", "mean", "std", "fold_scores", "rank"}
    assert set(data["per_class"][0]) == {"index", "name", "precision", "recall", "f1", "support"}
    assert data["grid"] == {"n_neighbors": [3], "vote": ["uniform", "distance"], "metric": ["euclidean", "cosine"]}
    assert {"n_neighbors", "vote", "metric"} == set(data["best_params"]) == set(data["cv_results"][0]["params"])
    assert RunRecord.from_dict(data) == record
    assert [r.run_key for r in iter_records()] == [record.run_key]
    with pytest.raises(ReportError, match="schema version"):
        RunRecord.from_dict({**data, "schema_version": 99})
    with pytest.raises(ReportError, match="missing"):
        RunRecord.from_dict({k: v for k, v in data.items() if k != "test_accuracy"})


def test_run_key_covers_what_changes_the_numbers(overlapping: Path) -> None:
    base = FitConfig(clf="logreg", grid={"C": [0.1, 1]}, cv=3)
    key = plan_run(overlapping, base).key
    assert plan_run(overlapping, FitConfig(clf="logreg", grid={"C": "1,0.1"}, cv=3)).key == key
    for changed in (
        FitConfig(clf="logreg", grid={"C": [0.1, 2]}, cv=3),
        FitConfig(clf="logreg", grid={"C": [0.1, 1]}, cv=4),
        FitConfig(clf="logreg", grid={"C": [0.1, 1]}, cv=3, seed=1),
        FitConfig(clf="logreg", grid={"C": [0.1, 1]}, cv=3, scale="l2"),
        FitConfig(clf="logreg", grid={"C": [0.1, 1]}, cv=3, pca=4),
        FitConfig(clf="linearsvc", grid={"C": [0.1, 1]}, cv=3),
    ):
        assert plan_run(overlapping, changed).key != key, changed


def test_skip_existing_reuses_an_up_to_date_record(overlapping: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = FitConfig(clf="logreg", grid={"C": [0.1]}, cv=3, solver="sklearn")  # the search it watches is scikit-learn's
    assert find_existing(overlapping, config) is None
    first = featx.fit(overlapping, config, n_jobs=1)
    assert find_existing(overlapping, config) == first

    def no_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("searched again")

    monkeypatch.setattr("featx.fitting.protocol.cross_validate_grid", no_search)
    assert featx.fit(overlapping, config, skip_existing=True, n_jobs=1) == first
    first.model_path().unlink()  # a record without its model is not up to date
    with pytest.raises(AssertionError, match="searched again"):
        featx.fit(overlapping, config, skip_existing=True, n_jobs=1)


def test_features_are_read_once(overlapping: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = cachefile.read_split

    def counting(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        calls.append(split)
        return original(path, split)

    monkeypatch.setattr("featx.fitting.protocol.read_split", counting)  # where stage two looks it up
    featx.fit(overlapping, clf="knn", grid={"n_neighbors": [1, 3]}, **FAST)
    assert sorted(calls) == ["test", "train"]


def test_search_memory_does_not_grow_with_the_grid() -> None:
    """No per-grid-point copy of the training matrix: 12 grid points peak like 2."""
    X, y = make_features(n_train=3000, n_test=1, dim=64, n_classes=5, separation=0.5)["train"]
    folds = stratified_folds(y, 3, seed=0)
    for clf, small, large in (
        ("linearsvc", {"C": [0.01, 1.0]}, {"C": list(np.logspace(-3, 2, 12))}),
        (
            "knn",
            {"n_neighbors": [1], "weights": ["uniform"], "metric": ["euclidean"]},
            {"n_neighbors": [1, 2, 3, 4, 5, 6], "weights": ["uniform", "distance"], "metric": ["euclidean"]},
        ),
    ):
        spec = get_classifier(clf)
        pipeline = build_pipeline(spec, scale="standard", pca=None, seed=0)
        peaks = []
        for grid in (small, large):
            tracemalloc.start()
            cross_validate_grid(pipeline, spec.searcher, X, y, grid_points(grid), folds, n_jobs=1)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        assert peaks[1] - peaks[0] < X.nbytes / 4, (clf, peaks)


@pytest.mark.parametrize(("scale", "pca"), [("standard", None), ("l2", None), ("none", 5), ("standard", 5)])
def test_fold_matrices_stay_float32(scale: str, pca: int | None) -> None:
    X, y = make_features(n_train=90, n_test=1, dim=8)["train"]
    pipeline = build_pipeline(get_classifier("logreg"), scale=scale, pca=pca, seed=0)
    X_train, X_val = transform_fold(pipeline[:-1], X, y, stratified_folds(y, 3, 0)[0])
    assert X_train.dtype == X_val.dtype == np.float32
    assert X.flags.owndata and X_train.shape[1] == (pca or 8)


def test_top5_only_when_more_than_five_classes(feature_file: Callable[..., Path]) -> None:
    path = feature_file(name="three", n_train=60, n_test=30, dim=4, n_classes=3)
    record = featx.fit(path, clf="logreg", grid={"C": [1]}, **FAST)
    assert record.top5_accuracy is None


def test_foreign_file_with_only_the_required_layout(tmp_path: Path) -> None:
    """A file written without featx: datasets, format version, completeness; no other attrs."""
    arrays = make_features(n_train=60, n_test=30, dim=5, n_classes=3)
    path = tmp_path / "elsewhere" / "mine.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as handle:
        handle.attrs["format_version"] = cachefile.FORMAT_VERSION
        for split, (X, y) in arrays.items():
            handle[f"{split}/features"] = X
            handle[f"{split}/labels"] = y
            handle[split].attrs["complete"] = True
    record = featx.fit(path, clf="linearsvc", grid={"C": [0.1]}, **FAST)
    assert record.features.key == "mine" and record.features.backbone == "mine" and record.features.weights is None
    assert record.class_names == ["0", "1", "2"]
    assert record.path().parent.name == "elsewhere"


# --------------------------------------------------------------------------- bad input


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _other_version(path: Path) -> Path:
    with h5py.File(path, "r+") as handle:
        handle.attrs["format_version"] = cachefile.FORMAT_VERSION + 1
    return path


def _with_nan(path: Path) -> Path:
    with h5py.File(path, "r+") as handle:
        handle["train/features"][3, 2] = np.nan
    return path


def _incomplete(path: Path) -> Path:
    with h5py.File(path, "r+") as handle:
        handle["train"].attrs["complete"] = False
    return path


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda p: p.with_name("absent__0000000000000000.h5"), CacheError, "not found"),
        (_truncated, CacheError, "truncated or damaged"),
        (_other_version, CacheError, "format version"),
        (_with_nan, CacheError, "NaN or inf"),
        (_incomplete, CacheError, "incomplete"),
    ],
)
def test_bad_feature_files_write_nothing(overlapping: Path, damage: Callable[[Path], Path], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        featx.fit(damage(overlapping), clf="logreg", **FAST)
    assert _written() == []


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"clf": "linearsvm"}, UnknownNameError, "did you mean linearsvc"),
        ({"clf": "logreg", "grid": {"C": "0,1"}}, ConfigError, "0 is not > 0"),
        ({"clf": "logreg", "grid": {"C": "0.1;1"}}, ConfigError, "not a number"),
        ({"clf": "logreg", "grid": {"n_neighbors": [3]}}, UnknownNameError, "unknown parameter of LogisticRegression .n_neighbors."),
        ({"clf": "knn", "grid": {"weights": "closest"}}, ConfigError, "not one of uniform, distance"),
        ({"clf": "logreg", "cv": 1}, ConfigError, "cv: must be at least 2"),
        ({"clf": "logreg", "scale": "minmax"}, ConfigError, "scale: unknown scaling 'minmax'"),
        ({"clf": "logreg", "pca": 0}, ConfigError, "pca: must be at least 1"),
        ({"clf": "logreg", "n_jobs": 0}, ConfigError, "n_jobs: must not be 0"),
        ({"clf": "logreg", "cv": 31}, FitError, "fewer than the 31 CV folds; use --cv 30"),
        ({"clf": "knn", "grid": {"n_neighbors": [500]}}, FitError, "more than the 140 training rows"),
        ({"clf": "logreg", "pca": 13}, FitError, "more components than the 12 feature columns"),
    ],
)
def test_bad_requests_write_nothing(overlapping: Path, options: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        featx.fit(overlapping, **{"n_jobs": 1, "cv": 3, **options})
    assert _written() == []


def test_a_class_with_fewer_members_than_folds(tmp_path: Path) -> None:
    arrays = make_features(n_train=60, n_test=20, dim=4, n_classes=3)
    X, y = arrays["train"]
    keep = np.concatenate([np.flatnonzero(y != 2), np.flatnonzero(y == 2)[:3]])
    path = cachefile.write_features(
        tmp_path / "few__00ff00ff00ff00ff.h5", {"train": (X[keep], y[keep]), "test": arrays["test"]}, class_names=["cat", "dog", "emu"]
    )
    with pytest.raises(FitError, match="class 'emu' has 3 training samples, fewer than the 5 CV folds; use --cv 3"):
        featx.fit(path, clf="logreg", n_jobs=1)
    assert _written() == []
    assert featx.fit(path, clf="logreg", cv=3, grid={"C": [1]}, n_jobs=1).cv == 3


def test_splits_of_different_widths(tmp_path: Path) -> None:
    arrays = make_features(n_train=30, n_test=9, dim=4, n_classes=3)
    arrays["test"] = (np.hstack([arrays["test"][0], arrays["test"][0]]), arrays["test"][1])
    path = cachefile.write_features(tmp_path / "odd__00ff00ff00ff00ff.h5", arrays, class_names=["a", "b", "c"])
    with pytest.raises(CacheError, match=r"different feature widths \(train 4, test 8\)"):
        featx.fit(path, clf="knn", cv=3, n_jobs=1)
    with pytest.raises(CacheError, match="different feature widths"):
        featx.pca(path)
    assert _written() == []


def test_an_empty_test_split(tmp_path: Path) -> None:
    arrays = make_features(n_train=30, n_test=0, dim=4, n_classes=3)
    path = cachefile.write_features(tmp_path / "empty__00ff00ff00ff00ff.h5", arrays, class_names=["a", "b", "c"])
    with pytest.raises(FitError, match="the test split is empty"):
        featx.fit(path, clf="knn", cv=3, n_jobs=1)
    assert _written() == []


def test_api_surface() -> None:
    import featx.fitting.projection
    import featx.fitting.protocol

    assert callable(featx.fit) and callable(featx.pca)
    assert featx.list_classifiers() == ["knn", "linearsvc", "logreg"]
    assert {"fit", "pca", "FitConfig", "load_record", "load_model"} <= set(dir(featx))


def test_record_carries_the_evidence_fields(overlapping: Path) -> None:
    """Issue 13: interval, balanced accuracy, log-loss, confused pairs and the wrong test rows."""
    record = featx.fit(overlapping, clf="logreg", grid={"C": [0.1]}, **FAST)
    data = json.loads(record.path().read_text())
    assert {"test_accuracy_ci95", "balanced_accuracy", "log_loss", "search", "confused_pairs"} <= set(data)
    low, high = record.test_accuracy_ci95 or (None, None)
    assert low is not None and high is not None and low < record.test_accuracy < high
    assert record.ci_method and "wilson" in record.ci_method
    assert record.search == "grid" and record.search_info == {}
    assert record.log_loss is not None and record.log_loss > 0
    assert 0 < (record.balanced_accuracy or 0) <= 1
    X_test, y_test = cachefile.read_split(overlapping, "test")
    predicted = load_model(record).predict(X_test)
    assert record.misclassified == [[int(r), int(y_test[r]), int(predicted[r])] for r in np.flatnonzero(predicted != y_test)]
    confusion = np.asarray(record.confusion_matrix)
    top = record.confused_pairs[0]
    i, j = record.class_names.index(top.true), record.class_names.index(top.predicted)
    assert top.count == confusion[i, j] == (confusion - np.diag(np.diag(confusion))).max()
    assert set(data["confused_pairs"][0]) >= {"true", "predicted", "count"}
    # LinearSVC gives no probabilities: no log-loss
    assert featx.fit(overlapping, clf="linearsvc", grid={"C": [0.1]}, **FAST).log_loss is None


def test_records_without_the_evidence_fields_still_read(overlapping: Path) -> None:
    record = featx.fit(overlapping, clf="knn", grid={"n_neighbors": [3]}, **FAST)
    data = json.loads(record.path().read_text())
    new = ("test_accuracy_ci95", "ci_method", "balanced_accuracy", "log_loss", "search", "search_info", "confused_pairs", "misclassified")
    old = RunRecord.from_dict({k: v for k, v in data.items() if k not in new})
    assert old.test_accuracy_ci95 is None and old.misclassified is None and old.search == "grid" and old.test_errors() is None


def test_random_search_draws_seeded_points_in_the_ranges(overlapping: Path) -> None:
    config = FitConfig(clf="logreg", grid={"C": [0.001, 10]}, cv=3, search="random", n_iter=5, solver="sklearn")
    record = featx.fit(overlapping, config, n_jobs=1)
    Cs = [p.params["C"] for p in record.cv_results]
    assert len(Cs) == 5 and all(0.001 <= c <= 10 for c in Cs) and len(set(Cs)) == 5
    assert record.search == "random" and record.search_info["n_iter"] == 5 and record.search_info["seed"] == 0
    assert plan_run(overlapping, config).key != plan_run(overlapping, config.replace(search="grid")).key
    again = featx.fit(overlapping, config, n_jobs=1, save=False)
    assert [p.params for p in again.cv_results] == [p.params for p in record.cv_results]
    assert again.test_accuracy == record.test_accuracy


def test_the_knn_vote_is_named_vote_in_records_and_either_way_in_grids(overlapping: Path) -> None:
    """One meaning per name: the k-NN vote is `vote` for users; scikit-learn's `weights` still
    works in a grid, means the same run (same key), and old records keep reading."""
    grid = {"n_neighbors": [3], "metric": ["euclidean"]}
    by_alias = featx.fit(overlapping, clf="knn", grid={**grid, "vote": ["distance"]}, **FAST)
    by_estimator_name = featx.fit(overlapping, clf="knn", grid={**grid, "weights": ["distance"]}, skip_existing=True, **FAST)
    assert by_estimator_name.run_key == by_alias.run_key
    assert by_alias.best_params == {"metric": "euclidean", "n_neighbors": 3, "vote": "distance"}
    assert by_alias.grid["vote"] == ["distance"] and "weights" not in by_alias.grid
    with pytest.raises(ConfigError, match="give vote or weights, not both") as caught:
        FitConfig(clf="knn", grid={"vote": ["uniform"], "weights": ["distance"]})
    assert caught.value.field == "grid.vote"
    data = json.loads(by_alias.path().read_text())
    rename = {"vote": "weights"}
    old = {
        **data,
        "grid": {rename.get(k, k): v for k, v in data["grid"].items()},
        "best_params": {rename.get(k, k): v for k, v in data["best_params"].items()},
        "cv_results": [{**p, "params": {rename.get(k, k): v for k, v in p["params"].items()}} for p in data["cv_results"]],
    }
    assert RunRecord.from_dict(old).best_params["weights"] == "distance"

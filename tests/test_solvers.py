"""The torch solvers against scikit-learn: the same optimum, the same chosen grid point.

Both linear objectives are strictly convex, so a solver is right when it reaches the
optimum: for every fold and grid point the objective value of the torch solution must be
no higher than that of scikit-learn's own estimator on the same rows (relative gap at most
1e-4). k-NN must give scikit-learn's neighbours except where two distances tie at float32
precision (counted). The saved model is a plain scikit-learn Pipeline that predicts
without torch. The GPU tier repeats the checks on CUDA (skipped without it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import LinearSVC

import featx
from featx.core.errors import ConfigError
from featx.fitting.config import FitConfig
from featx.fitting.records import load_model
from featx.fitting.solvers import linear
from featx.fitting.solvers.linear import objective
from featx.fitting.solvers.neighbors import nearest
from featx.reporting.views import solver_text

ROOT = Path(__file__).resolve().parents[1]
CUDA = pytest.importorskip("torch").cuda.is_available()


def features(n: int, d: int, n_classes: int, *, seed: int = 0, separation: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated, non-negative, overlapping classes, like pooled CNN features."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_classes, 16)) * separation
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    loading = rng.normal(size=(16, d)) * (np.arange(1, 17) ** -0.5)[:, None]
    X = np.maximum((latent[y] + rng.normal(size=(n, 16))) @ loading + 0.1 * rng.normal(size=(n, d)), 0.0)
    return X.astype(np.float32), y.astype(np.int64)


def reference(loss: str, C: float) -> LogisticRegression | LinearSVC:
    return LogisticRegression(C=C, max_iter=1000) if loss == "logistic" else LinearSVC(C=C, dual="auto", max_iter=5000)


# the problems: binary and 10 classes, fewer and more rows than features, three scalings
CASES = {
    "10 classes, n > d, standard": (600, 24, 10, "standard"),
    "binary, n > d, standard": (400, 16, 2, "standard"),
    "10 classes, n < d, standard": (120, 160, 10, "standard"),
    "binary, n < d, l2": (90, 120, 2, "l2"),
    "10 classes, n > d, none": (500, 20, 10, "none"),
}


def shared_problems(
    X: np.ndarray, y: np.ndarray, scale: str, *, by_fold: bool = False
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[linear.Affine], list[np.ndarray]]:
    """As featx.fitting.accelerated builds them: the matrix standardised once, each fold (and
    the whole split) an affine scaling of it; also each problem's own scaled rows. With
    ``by_fold`` the rows are first ordered by the fold that holds them out (the solver then
    computes each problem on its own runs of rows; otherwise it masks); the returned ``y``
    is in the matrix's row order."""
    if by_fold:
        order = np.concatenate([val for _, val in StratifiedKFold(3, shuffle=True, random_state=0).split(X, y)])
        X, y = X[order], y[order]
    base = Normalizer().fit_transform(X).astype(np.float32) if scale == "l2" else X
    centre, spread = base.mean(axis=0, dtype=np.float64), base.std(axis=0, dtype=np.float64)
    spread[spread == 0] = 1.0
    matrix = ((base - centre) / spread).astype(np.float32)
    splits = StratifiedKFold(3, shuffle=True, random_state=0).split(X, y)
    folds = [np.setdiff1d(np.arange(len(y)), val) for _, val in splits] + [np.arange(len(y))]
    affines, own = [], []
    for rows in folds:
        if scale == "standard":
            scaler = StandardScaler().fit(base[rows])
            mean, std = scaler.mean_, scaler.scale_
            affines.append(linear.Affine(shift=(mean - centre) / spread, scale=std / spread))
            own.append(scaler.transform(base[rows]).astype(np.float32))
        else:
            affines.append(linear.Affine(shift=-centre / spread, scale=1.0 / spread))
            own.append(base[rows].astype(np.float32))
    return matrix, y, folds, affines, own


def fold_masks(folds: list[np.ndarray], n: int) -> np.ndarray:
    """``(n_problems, n)`` bool: each problem's rows (the solvers' ``masks``)."""
    masks = np.zeros((len(folds), n), dtype=bool)
    for slot, rows in enumerate(folds):
        masks[slot, rows] = True
    return masks


@pytest.mark.parametrize("loss", ["logistic", "squared_hinge"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_linear_solvers_reach_scikit_learns_optimum_on_every_fold(loss: str, case: str) -> None:
    n, d, n_classes, scale = CASES[case]
    X, y = features(n, d, n_classes, seed=n + d)
    matrix, y, folds, affines, own = shared_problems(X, y, scale, by_fold=n_classes == 10)
    masks = fold_masks(folds, n)
    Cs = [1e-3, 0.1, 1.0]
    path = linear.solve_path(linear.Workspace(matrix), y, masks, affines, Cs, loss=loss)  # type: ignore[arg-type]
    for C, solution in zip(Cs, path):
        for slot, rows in enumerate(folds):
            fitted = reference(loss, C).fit(own[slot], y[rows])
            theirs = objective(loss, own[slot], y[rows], fitted.coef_, fitted.intercept_, C)
            ours = objective(loss, own[slot], y[rows], solution.coef[slot], solution.intercept[slot], C)
            assert ours <= theirs * (1 + 1e-4), (C, slot, ours, theirs)
            if loss == "squared_hinge":  # the duality gap bounds the distance to the optimum
                assert solution.gap is not None
                gap = float(solution.gap[slot])
                assert gap >= -1e-6 and ours - theirs <= (gap + 1e-6) * ours, (C, slot, gap, ours, theirs)
            else:
                assert solution.gap is not None and np.isnan(solution.gap[slot])
            agree = (
                np.mean(
                    np.argmax(linear.decision(own[slot], solution.coef[slot], solution.intercept[slot]), axis=1)
                    == np.argmax(fitted.decision_function(own[slot]).reshape(len(rows), -1), axis=1)
                )
                if n_classes > 2
                else np.mean(
                    (linear.decision(own[slot], solution.coef[slot], solution.intercept[slot])[:, 0] > 0)
                    == (fitted.decision_function(own[slot]) > 0)
                )
            )
            assert agree >= 0.97, (C, slot, agree)


@pytest.mark.parametrize("loss", ["logistic", "squared_hinge"])
@pytest.mark.parametrize("by_fold", [True, False], ids=["runs of rows", "masked rows"])
def test_row_blocks_reach_the_same_optimum_as_the_whole_matrix(loss: str, by_fold: bool) -> None:
    """The products a matrix too large for the device is streamed in: blocks that cut
    through the folds' runs of rows (or the masks) must sum to the whole matrix's answer."""
    X, y = features(300, 12, 10, seed=7)
    matrix, y, folds, affines, _ = shared_problems(X, y, "standard", by_fold=by_fold)
    masks = fold_masks(folds, len(y))
    whole, blocked = (
        linear.solve_path(linear.Workspace(matrix, block_rows=rows), y, masks, affines, [0.01, 1.0], loss=loss)  # type: ignore[arg-type]
        for rows in (None, 37)
    )
    for ours, theirs in zip(blocked, whole):
        np.testing.assert_allclose(ours.objective, theirs.objective, rtol=1e-5)
        np.testing.assert_allclose(ours.coef, theirs.coef, rtol=1e-2, atol=1e-3 * np.abs(theirs.coef).max())


@pytest.mark.parametrize("clf", ["logreg", "linearsvc"])
@pytest.mark.parametrize("pca", [None, 6])
def test_a_torch_fit_chooses_scikit_learns_grid_point_and_saves_a_plain_pipeline(
    feature_file: Callable[..., Path], clf: str, pca: int | None
) -> None:
    path = feature_file(name="probe", n_train=360, n_test=120, dim=16, n_classes=5, separation=1.2, seed=4)
    grid = {"C": [1e-4, 1e-2, 1.0]}
    ours = featx.fit(path, FitConfig(clf=clf, grid=grid, cv=3, pca=pca, solver="torch"), n_jobs=1, device="cpu")
    theirs = featx.fit(path, FitConfig(clf=clf, grid=grid, cv=3, pca=pca, solver="sklearn"), n_jobs=1)
    assert ours.solver == "torch" and ours.solver_info["device"].startswith("cpu") and ours.solver_info["iterations"] > 0
    assert ours.best_params == theirs.best_params
    for a, b in zip(ours.cv_results, theirs.cv_results):  # fold scores of equal optima: at most a sample apart
        assert np.allclose(a.fold_scores, b.fold_scores, atol=1.5 / 120)
    assert abs(ours.test_accuracy - theirs.test_accuracy) <= 2 / 120
    model, refitted = load_model(ours), load_model(theirs)
    assert type(model).__name__ == "Pipeline" and hasattr(model.steps[-1][1], "coef_")
    # the model is the whole split's solution at the chosen C, as good as scikit-learn's refit
    X, y, _ = featx.load_features(path, "train", dataset=None)
    loss, C = ("logistic" if clf == "logreg" else "squared_hinge"), ours.best_params["C"]
    ours_objective, theirs_objective = (
        objective(loss, fitted[:-1].transform(X), y, fitted[-1].coef_, fitted[-1].intercept_, C) for fitted in (model, refitted)
    )
    assert ours_objective <= theirs_objective * (1 + 1e-4)
    if clf == "linearsvc":  # the model's certified gap bounds its distance to liblinear's refit
        gap = ours.solver_info["model_duality_gap"]
        assert 0 <= gap <= ours.solver_info["max_duality_gap"] and ours_objective - theirs_objective <= (gap + 1e-6) * ours_objective
        assert f"the model's objective within {gap:.1e}" in solver_text(ours)
    else:
        assert "model_duality_gap" not in ours.solver_info and "duality" not in solver_text(ours)


def test_the_saved_torch_model_predicts_without_torch(feature_file: Callable[..., Path]) -> None:
    path = feature_file(name="probe", n_train=240, n_test=60, dim=10, n_classes=4, separation=1.5)
    record = featx.fit(path, FitConfig(clf="logreg", grid={"C": [0.1, 1.0]}, cv=3, solver="torch"), n_jobs=1, device="cpu")
    X_test, _, _ = featx.load_features(path, "test", dataset=None)
    np.save(Path(os.environ["FEATX_REPORTS_DIR"]) / "x.npy", X_test)
    expected = load_model(record).predict(X_test)
    script = textwrap.dedent(
        f"""
        import sys, joblib, numpy as np
        model = joblib.load({str(record.model_path())!r})
        print(" ".join(map(str, model.predict(np.load({str(Path(os.environ["FEATX_REPORTS_DIR"]) / "x.npy")!r})))))
        print("TORCH", "torch" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    predictions, imported = done.stdout.strip().splitlines()
    assert predictions.split() == [str(v) for v in expected] and imported == "TORCH False"


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "manhattan"])
def test_nearest_neighbours_are_scikit_learns_except_float32_ties(metric: str) -> None:
    from sklearn.metrics import pairwise_distances

    rng = np.random.default_rng(1)
    train = rng.normal(size=(700, 12)).astype(np.float32)
    train[350:360] = train[340:350]  # exact duplicates: distances that tie
    queries = rng.normal(size=(90, 12)).astype(np.float32)
    k = 9
    distances, indices = nearest(train, queries, k, metric=metric)
    ref_distances, ref_indices = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(train, np.zeros(len(train))).kneighbors(queries)
    np.testing.assert_allclose(distances, ref_distances, rtol=2e-5, atol=2e-5)
    all_distances = pairwise_distances(queries, train, metric=metric)
    ties = 0
    for row in np.flatnonzero((np.sort(indices, axis=1) != np.sort(ref_indices, axis=1)).any(axis=1)):
        # a different neighbour only where its distance ties the k-th at float32 precision
        swapped = np.setxor1d(indices[row], ref_indices[row])
        np.testing.assert_allclose(all_distances[row, swapped], ref_distances[row, -1], rtol=1e-5, atol=1e-6)
        ties += 1
    assert ties <= 10  # only the duplicated training rows can tie


def test_knn_on_torch_picks_scikit_learns_point(feature_file: Callable[..., Path]) -> None:
    path = feature_file(name="probe", n_train=300, n_test=90, dim=8, n_classes=3, separation=1.0, seed=5)
    grid = {"n_neighbors": [1, 5, 15], "weights": ["uniform", "distance"], "metric": ["euclidean", "cosine"]}
    ours = featx.fit(path, FitConfig(clf="knn", grid=grid, cv=3, solver="torch"), n_jobs=1, device="cpu")
    theirs = featx.fit(path, FitConfig(clf="knn", grid=grid, cv=3, solver="sklearn"), n_jobs=1, save=False)
    assert ours.best_params == theirs.best_params and ours.test_accuracy == theirs.test_accuracy
    for a, b in zip(ours.cv_results, theirs.cv_results):
        assert a.fold_scores == pytest.approx(b.fold_scores, abs=1 / 100)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("pca", [None, 5])
def test_knn_on_torch_scores_the_test_split_as_the_saved_model_does(
    feature_file: Callable[..., Path], weights: str, pca: int | None
) -> None:
    """The test split's neighbours come from the device's search, not from a second search by
    the saved KNeighborsClassifier: its predictions, top-5 and log-loss must be the model's."""
    path = feature_file(name="probe", n_train=400, n_test=120, dim=12, n_classes=10, separation=0.5, seed=8)
    grid = {"n_neighbors": [4, 9], "weights": [weights], "metric": ["cosine"]}

    def searched_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the saved model searched the test split again")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KNeighborsClassifier, "predict", searched_again)
        patch.setattr(KNeighborsClassifier, "predict_proba", searched_again)
        ours = featx.fit(path, FitConfig(clf="knn", grid=grid, cv=3, solver="torch", pca=pca), n_jobs=1, device="cpu", save=False)
    theirs = featx.fit(path, FitConfig(clf="knn", grid=grid, cv=3, solver="sklearn", pca=pca), n_jobs=1, save=False)
    assert ours.best_params == theirs.best_params
    assert (ours.test_accuracy, ours.misclassified, ours.top5_accuracy) == (
        theirs.test_accuracy,
        theirs.misclassified,
        theirs.top5_accuracy,
    )
    assert ours.log_loss == pytest.approx(theirs.log_loss, rel=1e-6)  # the same weights, summed in another order
    assert 0.15 < ours.test_accuracy < 1.0 and ours.top5_accuracy is not None and ours.top5_accuracy < 1.0


def test_solver_choice_and_what_torch_does_not_serve(feature_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from featx.fitting import classifiers

    path = feature_file(name="probe", n_train=120, n_test=30, dim=6, n_classes=3)
    sklearn_key = featx.fit(path, FitConfig(clf="logreg", grid={"C": [1.0]}, solver="sklearn"), n_jobs=1).run_key
    torch_key = featx.fit(path, FitConfig(clf="logreg", grid={"C": [1.0]}, solver="torch"), n_jobs=1, device="cpu").run_key
    assert sklearn_key != torch_key  # the solver changes the numbers: it is in the run key
    # an estimator whose objective the torch solvers do not solve (no intercept)
    other = dataclasses.replace(classifiers.CLASSIFIERS["logreg"], make_estimator=lambda seed: LogisticRegression(fit_intercept=False))
    monkeypatch.setitem(classifiers.CLASSIFIERS, "logreg", other)
    with pytest.raises(ConfigError, match="solver: the torch solvers solve the default logreg objective, not with fit_intercept"):
        featx.fit(path, FitConfig(clf="logreg", grid={"C": [1.0]}, solver="torch"), n_jobs=1)
    auto = featx.fit(path, FitConfig(clf="logreg", grid={"C": [1.0]}), n_jobs=1, save=False)
    assert auto.solver == "sklearn"  # auto falls back where torch does not serve the config


# --------------------------------------------------------------------------- GPU tier


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("loss", ["logistic", "squared_hinge"])
def test_cuda_solutions_reach_the_optimum_with_tf32_off(loss: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    X, y = features(2000, 64, 10, seed=3)
    matrix, y, folds, affines, own = shared_problems(X, y, "standard", by_fold=True)
    masks = fold_masks(folds, len(y))
    seen = []
    original = linear._value_grad

    def watching(*args: object, **kwargs: object) -> object:
        seen.append(torch.backends.cuda.matmul.allow_tf32)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(linear, "_value_grad", watching)
    torch.backends.cuda.matmul.allow_tf32 = True
    path = linear.solve_path(linear.Workspace(matrix, "cuda"), y, masks, affines, [0.01, 1.0], loss=loss)  # type: ignore[arg-type]
    assert seen and not any(seen) and torch.backends.cuda.matmul.allow_tf32  # off inside, restored after
    for C, solution in zip([0.01, 1.0], path):
        for slot, rows in enumerate(folds):
            fitted = reference(loss, C).fit(own[slot], y[rows])
            theirs = objective(loss, own[slot], y[rows], fitted.coef_, fitted.intercept_, C)
            assert objective(loss, own[slot], y[rows], solution.coef[slot], solution.intercept[slot], C) <= theirs * (1 + 1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_a_matrix_too_large_for_the_gpu_is_streamed_and_says_so(feature_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = feature_file(name="probe", n_train=600, n_test=150, dim=32, n_classes=5, separation=1.0, seed=6)
    grid = {"C": [1e-3, 0.1, 1.0]}
    kept = featx.fit(path, FitConfig(clf="logreg", grid=grid, cv=3, solver="torch"), n_jobs=1, device="cuda", save=False)
    monkeypatch.setattr(linear, "DEVICE_BUDGET", 0.0)
    streamed = featx.fit(path, FitConfig(clf="logreg", grid=grid, cv=3, solver="torch"), n_jobs=1, device="cuda", save=False)
    assert streamed.solver_info["streamed"] and not kept.solver_info["streamed"]
    assert streamed.best_params == kept.best_params and streamed.test_accuracy == pytest.approx(kept.test_accuracy, abs=0.01)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_fit_and_knn(feature_file: Callable[..., Path]) -> None:
    path = feature_file(name="probe", n_train=600, n_test=150, dim=32, n_classes=5, separation=1.0, seed=6)
    for clf, grid in (("logreg", {"C": [1e-3, 0.1, 1.0]}), ("linearsvc", {"C": [1e-3, 0.1]}), ("knn", {"n_neighbors": [1, 9]})):
        ours = featx.fit(path, FitConfig(clf=clf, grid=grid, cv=3, solver="torch"), n_jobs=1, device="cuda")
        theirs = featx.fit(path, FitConfig(clf=clf, grid=grid, cv=3, solver="sklearn"), n_jobs=1, save=False)
        assert ours.solver_info["device"].startswith("cuda") and ours.best_params == theirs.best_params


def test_auto_on_a_cpu_takes_torch_only_for_large_problems_and_linear_ones_with_more_rows_than_features() -> None:
    from featx.fitting.accelerated import CPU_TORCH_MIN_VALUES
    from featx.fitting.protocol import resolve_solver

    large, wide, large_and_wide, small = (50_000, 1_280), (1_200, 1_280), (4_000, 4_096), (2_000, 64)
    assert min(large[0] * large[1], large_and_wide[0] * large_and_wide[1]) >= CPU_TORCH_MIN_VALUES
    for clf in ("logreg", "linearsvc", "knn"):
        for shape in (None, wide, small, large, large_and_wide):
            config, device = resolve_solver(FitConfig(clf=clf), "cpu", shape=shape)
            expected = "torch" if shape == large or (shape == large_and_wide and clf == "knn") else "sklearn"
            assert (config.solver, device) == (expected, "cpu"), (clf, shape)
        config, device = resolve_solver(FitConfig(clf=clf, solver="torch"), "cpu", shape=small)
        assert config.solver == "torch" and device == "cpu"


def test_auto_choosing_scikit_learn_on_a_machine_without_a_gpu_driver_does_not_import_torch() -> None:
    """Importing torch costs seconds; a CPU-only machine's small k-NN or linear fit needs none of it."""
    probe = textwrap.dedent(
        """
        import sys
        from featx.core.devices import surely_no_gpu
        from featx.fitting.config import FitConfig
        from featx.fitting.protocol import resolve_solver
        if not surely_no_gpu():
            print("driver")
            sys.exit(0)
        choices = [resolve_solver(FitConfig(clf=clf), "auto", shape=(2_000, 64))[0].solver for clf in ("knn", "logreg")]
        print(choices, "torch" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    if done.stdout.strip() == "driver":
        pytest.skip("a GPU driver is loaded here: auto asks torch")
    assert done.stdout.strip() == "['sklearn', 'sklearn'] False"

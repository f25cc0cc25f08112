"""``featx.fit``: grid-search a classifier on cached features, refit the best, score the test split.

Protocol: stratified k-fold cross-validation (shuffled, seeded) on the train split only;
the grid point with the best mean CV accuracy (the first one on ties, as GridSearchCV)
is refit on the whole train split and scored once on the test split. The test split
never takes part in the choice.

The search is exact and fast (see :mod:`featx.fitting.search`); the refit uses the genuine
scikit-learn estimator, so the saved Pipeline is the canonical one. Everything that can
be wrong with the input is checked before any work or any write: a bad request raises a
:class:`~featx.core.errors.FeatxError` and leaves nothing on disk.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from featx._version import __version__
from featx.cache.reader import CacheInfo, features_content, open_features, read_split, resolve_features
from featx.core.console import progress
from featx.core.errors import ConfigError, FitError
from featx.core.hashing import jsonable
from featx.fitting.classifiers import Scale, build_pipeline
from featx.fitting.config import FitConfig, check_n_jobs
from featx.fitting.grids import as_number, format_point, format_values
from featx.fitting.metrics import ClassificationScores, classification_scores, log_loss, top_k_accuracy
from featx.fitting.records import (
    ClassScore,
    ConfusedPair,
    FeatureSource,
    GridPointScore,
    RunRecord,
    existing_record,
    run_key,
    run_stem,
    save_run,
    source_names,
)
from featx.fitting.search import best_index, collect_warnings, cross_validate_grid, fold_workers, search_points, stratified_folds
from featx.fitting.statistics import INTERVAL_METHOD, confused_pairs, wilson_interval

if TYPE_CHECKING:
    from featx.fitting.accelerated import AcceleratedSearch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """Where a run's files go, known before fitting (from the config and the file's attributes).

    ``content`` is what the features are (their checksums' content key); the run key
    hashes it, not the ``key`` attribute of the file, so that a copy of an entry edited
    under its original key never passes for it. ``config`` has its solver resolved
    (``auto`` made ``torch`` or ``sklearn``), and ``device`` is where a torch solver runs.
    """

    features_path: Path
    info: CacheInfo
    content: str
    key: str
    dataset: str
    backbone: str
    stem: str
    config: FitConfig
    device: str = "cpu"

    @property
    def record_file(self) -> str:
        return self.stem + ".json"

    @property
    def model_file(self) -> str:
        return self.stem + ".joblib"


def plan_run(
    features: str | os.PathLike[str],
    config: FitConfig,
    *,
    dataset: str | None = "cifar10",
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
) -> RunPlan:
    """Resolve the features, the solver and the device; compute the run key and file names
    (reads attributes only).

    Raises:
        CacheError: the features file is missing, untrusted or of another format version.
        ConfigError: ``solver`` torch for a config the torch solvers do not serve.
        DeviceError: CUDA asked for and not there.
    """
    path = resolve_features(features, dataset=dataset, cache_dir=cache_dir)
    info = open_features(path, splits=("train", "test"))
    content = features_content(info, ("train", "test"))
    train = info.splits.get("train")
    config = fit_default_grid(config, train.n_rows if train is not None else 0)
    config, where = resolve_solver(config, device, shape=(train.n_rows, train.dim) if train is not None else None)
    key = run_key(config.identity(content))
    data_set, backbone = source_names(info)
    stem = run_stem(dataset=data_set, backbone=backbone, features_key=info.key, clf=config.clf, key=key)
    return RunPlan(
        features_path=path,
        info=info,
        content=content,
        key=key,
        dataset=data_set,
        backbone=backbone,
        stem=stem,
        config=config,
        device=where,
    )


def fold_train_rows(n_rows: int, cv: int) -> int:
    """The rows the smallest training part of ``cv`` stratified folds of ``n_rows`` rows has
    (:func:`featx.fitting.search.stratified_folds` deals sorted labels out in turn, so the
    largest held-out part has ``ceil(n_rows / cv)`` rows)."""
    return n_rows - -(-n_rows // cv)


def fit_default_grid(config: FitConfig, n_train: int) -> FitConfig:
    """The config with default grid values that the CV folds of ``n_train`` rows cannot
    fit dropped (k-NN's k above a fold's training rows), each named in a warning. A grid
    the user gave is left as it is (it fails when the folds are made, naming the option).
    """
    rows = fold_train_rows(n_train, config.cv)
    if rows <= 0:
        return config
    grid, dropped = config.spec.fit_defaults(config.grid, rows)
    if not dropped:
        return config
    for name, values in dropped.items():
        log.warning(
            "dropped %s from the default %s grid of %s: a %d-fold CV trains on %d rows (give the grid to keep them)",
            format_values(values),
            name,
            config.clf,
            config.cv,
            rows,
        )
    return config.replace(grid=grid)


def resolve_solver(config: FitConfig, device: str = "auto", *, shape: tuple[int, int] | None = None) -> tuple[FitConfig, str]:
    """The config with its solver resolved, and the device a torch solver runs on.

    ``sklearn`` stays (and never imports torch); ``torch`` needs a classifier and grid the
    torch solvers serve; ``auto`` takes torch where it serves them and is faster on the
    device and problem (:func:`~featx.fitting.accelerated.auto_uses_torch`: every served
    classifier on CUDA; on a CPU the linear ones on large problems with more rows than
    features), else sklearn.

    Args:
        config: the fit's config.
        device: ``auto``, ``cpu`` or ``cuda[:i]``.
        shape: the training split's ``(rows, features)``; None (unknown) keeps a CPU on
            scikit-learn.

    Raises:
        ConfigError: ``torch`` for a config the torch solvers do not serve.
        DeviceError: CUDA asked for and not there.
    """
    from featx.core.devices import check_device

    device = check_device(device)
    if config.solver == "sklearn":
        return config, "cpu"
    from featx.core.devices import resolve_device, surely_no_gpu
    from featx.fitting.accelerated import auto_uses_torch, unsupported

    problem = unsupported(config)
    if config.solver == "torch":
        if problem:
            raise ConfigError(f"{problem}; use solver sklearn", field="solver")
        return config, str(resolve_device(device))
    rows, features = shape if shape is not None else (0, 1)
    # a machine surely without a GPU is a CPU: no torch import (seconds) to find that out
    where = "cpu" if device == "cpu" or (device == "auto" and surely_no_gpu()) else str(resolve_device(device))
    chosen = "torch" if problem is None and auto_uses_torch(config.clf, where.split(":")[0], rows, features) else "sklearn"
    return config.replace(solver=chosen), where if chosen == "torch" else "cpu"


def find_existing(
    features: str | os.PathLike[str],
    config: FitConfig,
    *,
    dataset: str | None = "cifar10",
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
) -> RunRecord | None:
    """The up-to-date record of this exact run, if one was written before (no fitting).

    Raises:
        CacheError: the features cannot be resolved or trusted.
    """
    plan = plan_run(features, config, dataset=dataset, cache_dir=cache_dir, device=device)
    return existing_record(plan.record_file, plan.key, reports_dir)


def fit(
    features: str | os.PathLike[str],
    config: FitConfig | None = None,
    *,
    dataset: str | None = "cifar10",
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    skip_existing: bool = False,
    save: bool = True,
    n_jobs: int = -1,
    device: str = "auto",
    environment: Mapping[str, Any] | None = None,
    **config_fields: Any,
) -> RunRecord:
    """Grid-search a classifier on cached features; refit the best; score the test split.

    Example::

        record = featx.fit("resnet50", clf="logreg", grid={"C": "logspace:-4:2:13"}, cv=5)
        record.test_accuracy, record.best_params

    Args:
        features: an .h5 path, or a backbone name resolved in the cache for ``dataset``.
        config: a :class:`~featx.fitting.config.FitConfig`; or give its fields as
            keywords (``clf=``, ``grid=``, ``cv=``, ``scale=``, ``pca=``, ``seed=``),
            which also override a given config.
        dataset: data set folder in the cache, for a backbone name.
        cache_dir: cache root (default ``features/`` or ``FEATX_CACHE_DIR``).
        reports_dir: reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
        skip_existing: return the record of an identical earlier run instead of fitting.
        save: write the record and the model (``<reports>/runs/...``).
        n_jobs: folds run at once by joblib (-1: every core of its active backend);
            does not change the result. Inside ``joblib.parallel_config(backend="dask")``
            the folds are tasks on a Dask cluster (see :func:`featx.cluster.fold_work_on`).
            The torch solvers run every fold in one batch, here.
        device: where the torch solvers run: ``auto`` (CUDA when present), ``cpu``,
            ``cuda`` or ``cuda:<index>``.
        environment: facts added to the record's ``environment`` (e.g. the cluster the
            folds ran on).

    Returns:
        The :class:`~featx.fitting.records.RunRecord`; the fitted Pipeline is at
        ``record.model_path(reports_dir)`` when saved.

    Raises:
        ConfigError: invalid options or grid.
        CacheError: the features are missing, untrusted, or hold NaN/inf.
        FitError: the data cannot support the request (a class with fewer samples than
            folds, more neighbours or components than training rows, ...).
    """
    if config is None:
        config = FitConfig(**config_fields)
    elif config_fields:
        config = config.replace(**config_fields)
    n_jobs = check_n_jobs(n_jobs)
    started = time.perf_counter()
    plan = plan_run(features, config, dataset=dataset, cache_dir=cache_dir, device=device)
    config = plan.config
    if skip_existing:
        found = existing_record(plan.record_file, plan.key, reports_dir)
        if found is not None:
            log.info("up-to-date record exists: %s", found.path(reports_dir))
            return found
    data = _read(plan)
    _check_data(config, data)
    log.info(
        "%s on %s: %d train / %d test rows, %d features, %d classes",
        config.clf,
        plan.features_path.name,
        len(data.y),
        len(data.y_test),
        data.X.shape[1],
        len(data.class_names),
    )
    if config.solver == "torch":
        search, solved = _accelerated(config, data, device=plan.device)
        model = solved.model
        test = _test(
            model,
            data.X_test,
            data.y_test,
            len(data.class_names),
            fit_seconds=solved.model_seconds,
            votes=solved.test_votes,
            votes_seconds=solved.test_seconds,
        )
    else:
        search = _cross_validate(config, data, n_jobs=n_jobs)
        model, test = _refit_and_test(config, search.best_params, data.X, data.y, data.X_test, data.y_test, len(data.class_names))
    log.info("test accuracy %.4f (refit %.1f s, predict %.2f s)", test.scores.accuracy, test.fit_seconds, test.predict_seconds)
    for message in dict.fromkeys(search.warnings + test.warnings):
        log.warning("%s", message)
    record = _record(
        config, plan, data, search, test, model, total_seconds=time.perf_counter() - started, n_jobs=n_jobs, environment=environment
    )
    if save:
        record = save_run(record, model, reports_dir)
        log.info("record: %s", record.path(reports_dir))
    return record


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class _Data:
    """Both splits of a feature file, read once."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    seconds: float


@dataclass(frozen=True)
class _Search:
    """Cross-validation outcome: accuracy per grid point and fold."""

    points: list[dict[str, Any]]
    fold_scores: np.ndarray  # (n_points, n_folds)
    seconds: float
    warnings: list[str]
    solver_info: dict[str, Any] = field(default_factory=dict)  # how the torch solvers ran

    @property
    def means(self) -> np.ndarray:
        return np.average(self.fold_scores, axis=1)

    @property
    def stds(self) -> np.ndarray:
        return np.sqrt(np.average((self.fold_scores - self.means[:, None]) ** 2, axis=1))

    @property
    def best(self) -> int:
        return best_index(self.means)

    @property
    def best_params(self) -> dict[str, Any]:
        return self.points[self.best]


@dataclass(frozen=True)
class _Test:
    """The refit model's scores on the test split."""

    scores: ClassificationScores
    top5: float | None
    fit_seconds: float
    predict_seconds: float
    warnings: list[str]
    predicted: np.ndarray | None = None  # (n_test,) labels
    log_loss: float | None = None


def _read(plan: RunPlan) -> _Data:
    """Read both splits once (``plan_run`` checked that their widths agree); neither may be empty."""
    start = time.perf_counter()
    X, y = read_split(plan.features_path, "train")
    X_test, y_test = read_split(plan.features_path, "test")
    for name, labels in (("train", y), ("test", y_test)):
        if len(labels) == 0:
            raise FitError(f"{plan.features_path}: the {name} split is empty")
    class_names = plan.info.class_names or [str(i) for i in range(int(max(y.max(), y_test.max())) + 1)]
    return _Data(X, y, X_test, y_test, class_names, time.perf_counter() - start)


def _check_data(config: FitConfig, data: _Data) -> None:
    """Refuse what cross-validation cannot do, before any work."""
    counts = np.bincount(data.y, minlength=len(data.class_names))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise FitError(f"the train split has {len(present)} class(es); a classifier needs at least 2")
    smallest = present[np.argmin(counts[present])]
    if counts[smallest] < config.cv:
        hint = f"use --cv {counts[smallest]} or fewer" if counts[smallest] >= 2 else "add samples of it"
        raise FitError(
            f"class {data.class_names[smallest]!r} has {counts[smallest]} training samples, fewer than the {config.cv} CV folds; {hint}"
        )
    n_features = data.X.shape[1]
    if config.pca is not None and config.pca > n_features:
        raise FitError(f"--pca {config.pca} asks for more components than the {n_features} feature columns")


def _check_fold_sizes(config: FitConfig, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    smallest = min(len(train) for train, _ in folds)
    if config.pca is not None and config.pca > smallest:
        raise FitError(f"--pca {config.pca} asks for more components than the {smallest} training rows of a CV fold")
    k_max = max((int(as_number(k)) for k in config.grid.get("n_neighbors", ())), default=0)
    if k_max > smallest:
        raise FitError(f"k={k_max} neighbours is more than the {smallest} training rows of a CV fold; lower --k-grid")


def _cross_validate(config: FitConfig, data: _Data, *, n_jobs: int) -> _Search:
    """Cross-validate every grid point on the training split."""
    folds = stratified_folds(data.y, config.cv, config.seed)
    _check_fold_sizes(config, folds)
    points = search_points(config.grid, search=config.search, n_iter=config.n_iter, seed=config.seed)
    pipeline = build_pipeline(config.spec, scale=config.scale, pca=config.pca, seed=config.seed)
    log.info("searching %d grid point(s) x %d folds with %d worker(s)", len(points), len(folds), fold_workers(n_jobs, len(folds)))
    start = time.perf_counter()
    with progress(total=len(folds), desc=f"{config.clf} cv", unit="fold") as bar:
        try:
            results = cross_validate_grid(
                pipeline, config.spec.searcher, data.X, data.y, points, folds, n_jobs=n_jobs, on_fold=lambda _: bar.update(1)
            )
        except (ValueError, np.linalg.LinAlgError) as error:
            raise FitError(f"{config.clf} failed during cross-validation: {error}") from error
    search = _Search(
        points=points,
        fold_scores=np.stack([r.scores for r in results], axis=1),
        seconds=time.perf_counter() - start,
        warnings=[message for r in results for message in r.warnings],
    )
    best = search.best
    log.info(
        "best %s: CV accuracy %.4f +/- %.4f (search %.1f s)",
        format_point(search.best_params),
        search.means[best],
        search.stds[best],
        search.seconds,
    )
    return search


def _accelerated(config: FitConfig, data: _Data, *, device: str) -> tuple[_Search, AcceleratedSearch]:
    """Every fold and grid point on the torch solvers, then the model at the chosen point
    (the whole split solved by them too: its time is the record's refit time) and, for
    k-NN, the test split's votes from the device's search."""
    from featx.fitting.accelerated import search

    folds = stratified_folds(data.y, config.cv, config.seed)
    _check_fold_sizes(config, folds)
    points = search_points(config.grid, search=config.search, n_iter=config.n_iter, seed=config.seed)
    log.info("searching %d grid point(s) x %d folds with the torch solvers on %s", len(points), len(folds), device)
    with collect_warnings() as messages:
        try:
            found = search(config, data.X, data.y, folds, points, device=device, X_test=data.X_test)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
            raise FitError(f"{config.clf} failed during cross-validation: {error}") from error
    result = _Search(points=points, fold_scores=found.fold_scores, seconds=found.seconds, warnings=messages, solver_info=found.info)
    best = result.best
    log.info(
        "best %s: CV accuracy %.4f +/- %.4f (search %.1f s)",
        format_point(result.best_params),
        result.means[best],
        result.stds[best],
        result.seconds,
    )
    return result, found


def _refit_and_test(
    config: FitConfig, params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, n_classes: int
) -> tuple[Any, _Test]:
    """Refit the chosen point on the whole train split with the genuine estimator; score the test split once.

    Pure: arrays in, model and scores out.
    """
    model = build_pipeline(config.spec, scale=config.scale, pca=config.pca, seed=config.seed, params=params)
    # BLAS single-threaded, as in the folds: the products are skinny (n x d times d x
    # classes) and OpenBLAS threads made lbfgs 3x slower on the machine this was measured on.
    with collect_warnings() as messages, threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        model.fit(X, y)
        fit_seconds = time.perf_counter() - start
    test = _test(model, X_test, y_test, n_classes, fit_seconds=fit_seconds)
    return model, replace(test, warnings=messages + test.warnings)


def _test(
    model: Any,
    X_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    *,
    fit_seconds: float,
    votes: np.ndarray | None = None,
    votes_seconds: float = 0.0,
) -> _Test:
    """Score the test split once with the fitted model, or with a k-NN model's ``votes``
    per class of ``model.classes_`` already found (``votes_seconds`` then is the predict time)."""
    messages: list[str] = []
    if votes is None:
        with collect_warnings() as messages, threadpool_limits(limits=1, user_api="blas"):
            start = time.perf_counter()
            predicted = model.predict(X_test)
            probabilities = np.asarray(model.predict_proba(X_test)) if hasattr(model, "predict_proba") else None
            scores = _scores(model, X_test, probabilities)
            predict_seconds = time.perf_counter() - start
    else:  # predict is the votes' argmax, predict_proba the votes normalised
        predicted = model.classes_[np.argmax(votes, axis=1)]
        total = votes.sum(axis=1, keepdims=True)
        probabilities = scores = votes / np.where(total == 0.0, 1.0, total)
        predict_seconds = votes_seconds
    test = classification_scores(y_test, predicted, n_classes)
    top5 = top_k_accuracy(y_test, scores, model.classes_) if scores is not None else None
    loss = log_loss(y_test, probabilities, model.classes_) if probabilities is not None else None
    return _Test(test, top5, fit_seconds, predict_seconds, messages, predicted=np.asarray(predicted), log_loss=loss)


def _record(
    config: FitConfig,
    plan: RunPlan,
    data: _Data,
    search: _Search,
    test: _Test,
    model: Any,
    *,
    total_seconds: float,
    n_jobs: int,
    environment: Mapping[str, Any] | None,
) -> RunRecord:
    means, stds, ranks, scores = search.means, search.stds, _ranks(search.means), test.scores
    return RunRecord(
        run_key=plan.key,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        featx_version=__version__,
        clf=config.clf,
        estimator=type(model.steps[-1][1]).__name__,
        estimator_params=jsonable(config.spec.fixed_params(config.seed, swept=list(config.grid))),
        pipeline=[f"{name}: {step!r}" for name, step in model.steps],
        features=_feature_source(plan, data),
        class_names=list(data.class_names),
        cv=config.cv,
        scale=Scale(config.scale).value,
        pca=config.pca,
        seed=config.seed,
        grid=config.spec.public_point({name: list(values) for name, values in config.resolved_grid.items()}),
        cv_results=[
            GridPointScore(
                params=jsonable(config.spec.public_point(point)),
                mean=float(means[i]),
                std=float(stds[i]),
                fold_scores=[float(s) for s in search.fold_scores[i]],
                rank=int(ranks[i]),
            )
            for i, point in enumerate(search.points)
        ],
        best_params=jsonable(config.spec.public_point(search.best_params)),
        cv_best_score=float(means[search.best]),
        cv_best_std=float(stds[search.best]),
        test_accuracy=scores.accuracy,
        top5_accuracy=test.top5,
        macro_f1=scores.macro_f1,
        per_class=[
            ClassScore(
                index=i,
                name=name,
                precision=float(scores.precision[i]),
                recall=float(scores.recall[i]),
                f1=float(scores.f1[i]),
                support=int(scores.support[i]),
            )
            for i, name in enumerate(data.class_names)
        ],
        confusion_matrix=scores.confusion.astype(int).tolist(),
        read_seconds=data.seconds,
        search_seconds=search.seconds,
        fit_seconds=test.fit_seconds,
        predict_seconds=test.predict_seconds,
        total_seconds=total_seconds,
        n_jobs=n_jobs,
        record_file=plan.record_file,
        model_file=plan.model_file,
        warnings=list(dict.fromkeys(search.warnings + test.warnings)),
        environment={**_environment(), **(environment or {})},
        solver=config.solver,
        solver_info=jsonable(search.solver_info),
        test_accuracy_ci95=list(wilson_interval(int(np.trace(scores.confusion)), len(data.y_test))),
        ci_method=INTERVAL_METHOD,
        balanced_accuracy=scores.balanced_accuracy,
        log_loss=test.log_loss,
        search=config.search,
        search_info=_search_info(config),
        confused_pairs=[
            ConfusedPair(data.class_names[t], data.class_names[p], count, count / max(1, int(scores.support[t])))
            for t, p, count in confused_pairs(scores.confusion)
        ],
        misclassified=_misclassified(data.y_test, test.predicted),
    )


def _search_info(config: FitConfig) -> dict[str, Any]:
    """How the points were chosen (a random search's draws are the record's ``cv_results`` params)."""
    if config.search != "random":
        return {}
    return {
        "n_iter": config.n_iter,
        "seed": config.seed,
        "draws": "log-uniform between each numeric parameter's smallest and largest grid value (whole numbers rounded); names uniform",
    }


def _misclassified(y_test: np.ndarray, predicted: np.ndarray | None) -> list[list[int]] | None:
    """``[row, true, predicted]`` of every wrong test image (rows: the cache's row order, the data set's)."""
    if predicted is None:
        return None
    rows = np.flatnonzero(np.asarray(predicted) != y_test)
    return [[int(r), int(y_test[r]), int(predicted[r])] for r in rows]


def _scores(model: Any, X: np.ndarray, probabilities: np.ndarray | None) -> np.ndarray | None:
    """Per-class scores for top-k: decision values, else the probabilities already
    computed (a k-NN model's cost a neighbour search); None if neither."""
    values = np.asarray(model.decision_function(X)) if hasattr(model, "decision_function") else probabilities
    return values if values is not None and values.ndim == 2 else None


def _ranks(means: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(-means, method="min").astype(int)


def _feature_source(plan: RunPlan, data: _Data) -> FeatureSource:
    attrs = {name: value for name, value in plan.info.attrs.items() if name != "class_names"}
    weights = attrs.get("weights")
    return FeatureSource(
        path=str(plan.features_path),
        key=plan.info.key,
        dataset=plan.dataset,
        backbone=plan.backbone,
        weights=None if weights in (None, "") else str(weights),
        feature_dim=int(data.X.shape[1]),
        n_train=len(data.y),
        n_test=len(data.y_test),
        attrs=jsonable(attrs),
        splits={
            name: {"n_rows": s.n_rows, "seconds": s.seconds, "images_per_second": s.images_per_second, "device": s.device}
            for name, s in plan.info.splits.items()
        },
        content=plan.content,
    )


def _environment() -> dict[str, Any]:
    """Versions and machine of this process."""
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(terse=True),
        "cpu_count": os.cpu_count(),
    }

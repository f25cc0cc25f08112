"""``featx.curve``: how test accuracy grows with the number of labelled training images.

For each number of training images per class ("shots"), :func:`curve` draws a seeded,
class-balanced subset of the cached train split (every class keeps ``min(shots, its
count)`` images), fits the classifier on it and scores the whole test split; repeated
``repeats`` times with other draws, it records the mean and the spread per point.
``full`` is the whole train split (one draw: every repeat would be the same).

Choosing the parameters: cross-validation on the subset, with ``min(cv, shots)`` stratified
folds, when there are at least 2 images per class; with 1 image per class there is
nothing to validate on, and the classifier's fixed default point is used
(:data:`ONE_SHOT_DEFAULTS`: C=1 for the linear models, k=1 for k-NN), which the record
states. The cached features are read once: no image is read again.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, Strict, ValidationInfo, field_validator
from threadpoolctl import threadpool_limits

from featx._version import __version__
from featx.cache.reader import features_content, open_features, read_split, resolve_features
from featx.core import paths
from featx.core.atomic import atomic_write_text
from featx.core.errors import FitError, ReportError
from featx.core.hashing import jsonable, short_hash
from featx.core.ownership import FileKind, json_with
from featx.core.paths import safe_name
from featx.core.schema import Config, Invalid
from featx.fitting.classifiers import Scale, build_pipeline
from featx.fitting.config import FitConfig
from featx.fitting.metrics import accuracy
from featx.fitting.records import source_names
from featx.fitting.search import best_index, collect_warnings, cross_validate_grid, grid_points, stratified_folds

log = logging.getLogger(__name__)

CURVES_DIR = "curves"
FULL = "full"
DEFAULT_SHOTS = (1, 2, 5, 10, 20, 50, 100, FULL)
#: the point used when one image per class leaves nothing to cross-validate on
ONE_SHOT_DEFAULTS: dict[str, dict[str, Any]] = {"logreg": {"C": 1.0}, "linearsvc": {"C": 1.0}, "knn": {"n_neighbors": 1}}
#: a curve file as featx writes it
CURVE_KIND = FileKind("data-efficiency curve", json_with("curve_key", "points"))

Shot = int | str


def parse_shots(given: Any) -> tuple[Shot, ...]:
    """``"1,5,20,full"`` (or a list) as sorted whole numbers of images per class, ``"full"`` last.

    Raises:
        Invalid: a value that is neither a positive whole number nor ``full``.
    """
    items = given.split(",") if isinstance(given, str) else list(given)
    out: list[Shot] = []
    for item in items:
        text = str(item).strip().lower()
        if text == FULL:
            out.append(FULL)
            continue
        try:
            value = int(text)
        except ValueError:
            raise Invalid(f"expected whole numbers of images per class or 'full', got {item!r}") from None
        if value < 1:
            raise Invalid(f"images per class must be at least 1, got {value}")
        out.append(value)
    if not out:
        raise Invalid("give at least one number of images per class")
    numbers = sorted({v for v in out if isinstance(v, int)})
    return (*numbers, *((FULL,) if FULL in out else ()))


class CurveConfig(Config):
    """A data-efficiency curve: the classifier, its grid, the shots and the draws.

    Attributes:
        fit: the classifier, grid, folds, scaling and seed, as for ``featx fit`` (PCA is
            not offered: a few shots leave fewer rows than components).
        shots: training images per class, ascending; ``"full"`` for the whole train split.
        repeats: seeded class-balanced draws per number of shots.

    Raises:
        ConfigError: naming the field (``shots``, ``repeats``, ``fit.grid.C`` ...).
    """

    fit: FitConfig
    shots: tuple[Shot, ...] = Field(default=DEFAULT_SHOTS, validate_default=True)
    repeats: Annotated[int, Strict(), Field(ge=1, le=1000)] = 5

    @field_validator("shots", mode="before")
    @classmethod
    def _check_shots(cls, given: Any, info: ValidationInfo) -> tuple[Shot, ...]:
        return parse_shots(given)

    def identity(self, features: str) -> dict[str, Any]:
        """What the curve key hashes."""
        return {"curve": 1, **self.fit.identity(features), "shots": list(self.shots), "repeats": self.repeats}


@dataclass(frozen=True)
class CurvePoint:
    """One number of shots: the test accuracy of each draw, their mean and spread.

    Attributes:
        shots: images per class, or ``"full"``.
        mean, std: over the draws (population std).
        n_repeats: draws made.
        n_train: training images of each draw (fewer than shots x classes where a class is short).
        accuracies: test accuracy of each draw.
        params: the parameters each draw was scored with.
        selection: ``"cv-<k>"`` (k-fold CV on the draw) or ``"default"`` (no CV possible).
    """

    shots: Shot
    mean: float
    std: float
    n_repeats: int
    n_train: list[int]
    accuracies: list[float]
    params: list[dict[str, Any]]
    selection: str


@dataclass(frozen=True)
class CurveRecord:
    """A data-efficiency curve, as written to ``<reports>/curves/<dataset>/...json``."""

    curve_key: str
    created: str
    featx_version: str
    clf: str
    scale: str
    cv: int
    seed: int
    grid: dict[str, list[Any]]
    shots: list[Shot]
    repeats: int
    features: dict[str, Any]  # path, key, content, dataset, backbone, attrs, n_train, n_test, n_classes
    points: list[CurvePoint]
    protocol: str
    record_file: str
    draws: str = "per class, rng = numpy default_rng([seed, shots, repeat]); a permutation of the class's rows, the first `shots` kept"

    def to_dict(self) -> dict[str, Any]:
        """As JSON types."""
        import dataclasses

        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CurveRecord:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ReportError: a field missing or of the wrong type.
        """
        from pydantic import TypeAdapter, ValidationError

        try:
            record: CurveRecord = TypeAdapter(cls).validate_python(dict(data))
        except ValidationError as error:
            raise ReportError(f"malformed curve record: {str(error).splitlines()[0]}") from None
        return record


def balanced_draw(y: np.ndarray, shots: int, *, seed: int, repeat: int) -> np.ndarray:
    """Sorted row indices of ``min(shots, count)`` rows of every class of ``y``, seeded by
    ``(seed, shots, repeat)`` (the same call gives the same rows)."""
    rng = np.random.default_rng([seed, shots, repeat])
    chosen = [rng.permutation(np.flatnonzero(y == c))[:shots] for c in np.unique(y)]
    return np.sort(np.concatenate(chosen))


def curve_points(
    config: CurveConfig, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, *, n_jobs: int = 1
) -> list[CurvePoint]:
    """The curve on arrays: pure (arrays in, points out).

    Args:
        config: the curve.
        X, y: ``(n_train, n_features)`` training features and ``(n_train,)`` labels.
        X_test, y_test: the test split, scored whole at every point.
        n_jobs: folds fitted at once.

    Raises:
        FitError: the classifier fails on a draw.
    """
    fit = config.fit
    points = []
    for shots in config.shots:
        draws = (
            [np.arange(len(y))] if shots == FULL else [balanced_draw(y, int(shots), seed=fit.seed, repeat=r) for r in range(config.repeats)]
        )
        scores, params, sizes, selection = [], [], [], ""
        for rows in draws:
            chosen, selection = _choose(fit, X[rows], y[rows], n_jobs=n_jobs)
            model = build_pipeline(fit.spec, scale=fit.scale, pca=None, seed=fit.seed, params=chosen)
            with collect_warnings(), threadpool_limits(limits=1, user_api="blas"):
                try:
                    model.fit(X[rows], y[rows])
                except ValueError as error:
                    raise FitError(f"{fit.clf} failed on a draw of {shots} image(s) per class: {error}") from error
                scores.append(accuracy(y_test, model.predict(X_test)))
            params.append(jsonable(fit.spec.public_point(chosen)))
            sizes.append(len(rows))
        values = np.asarray(scores)
        points.append(
            CurvePoint(
                shots=shots,
                mean=float(values.mean()),
                std=float(values.std()),
                n_repeats=len(draws),
                n_train=sizes,
                accuracies=[float(v) for v in values],
                params=params,
                selection=selection,
            )
        )
        log.info("%s image(s) per class: test accuracy %.4f +/- %.4f over %d draw(s)", shots, values.mean(), values.std(), len(draws))
    return points


def _choose(fit: FitConfig, X: np.ndarray, y: np.ndarray, *, n_jobs: int) -> tuple[dict[str, Any], str]:
    """The point to fit a draw with: CV on the draw when every class has 2 images or more, else the default."""
    smallest = int(np.bincount(y)[np.unique(y)].min())
    if smallest < 2:
        return dict(ONE_SHOT_DEFAULTS.get(fit.clf, {})), "default"
    folds = stratified_folds(y, min(fit.cv, smallest), fit.seed)
    rows = min(len(train) for train, _ in folds)
    candidates = [p for p in grid_points(fit.grid) if int(p.get("n_neighbors", 1)) <= rows]
    if not candidates:
        return dict(ONE_SHOT_DEFAULTS.get(fit.clf, {})), "default"
    pipeline = build_pipeline(fit.spec, scale=fit.scale, pca=None, seed=fit.seed)
    try:
        results = cross_validate_grid(pipeline, fit.spec.searcher, X, y, candidates, folds, n_jobs=n_jobs)
    except (ValueError, np.linalg.LinAlgError) as error:
        raise FitError(f"{fit.clf} failed during cross-validation on a draw: {error}") from error
    means = np.mean(np.stack([r.scores for r in results], axis=1), axis=1)
    return candidates[best_index(means)], f"cv-{len(folds)}"


def curve(
    features: str | os.PathLike[str],
    config: CurveConfig,
    *,
    dataset: str | None = "cifar10",
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    save: bool = True,
    n_jobs: int = 1,
) -> CurveRecord:
    """A data-efficiency curve on cached features (see the module docstring for the protocol).

    Example::

        record = featx.curve("resnet50", CurveConfig(fit=FitConfig(clf="logreg"), shots=(1, 5, 20, "full")))
        [(p.shots, p.mean) for p in record.points]

    Args:
        features: an .h5 path, or a backbone name resolved in the cache for ``dataset``.
        config: the curve.
        dataset, cache_dir: where a backbone name is looked up.
        reports_dir: reports root; the curve goes to ``curves/<dataset>/``.
        save: write the curve record.
        n_jobs: folds fitted at once.

    Returns:
        The :class:`CurveRecord`.

    Raises:
        CacheError: the features are missing or untrusted.
        FitError: the classifier fails on a draw.
    """
    path = resolve_features(features, dataset=dataset, cache_dir=cache_dir)
    info = open_features(path, splits=("train", "test"))
    content = features_content(info, ("train", "test"))
    X, y = read_split(path, "train")
    X_test, y_test = read_split(path, "test")
    data_set, backbone = source_names(info)
    key = short_hash(config.identity(content))
    fit = config.fit
    points = curve_points(config, X, y, X_test, y_test, n_jobs=n_jobs)
    stem = f"{CURVES_DIR}/{safe_name(data_set)}/{safe_name(backbone)}__{safe_name(info.key)}__{safe_name(fit.clf)}__{key}"
    record = CurveRecord(
        curve_key=key,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        featx_version=__version__,
        clf=fit.clf,
        scale=Scale(fit.scale).value,
        cv=fit.cv,
        seed=fit.seed,
        grid=fit.spec.public_point({name: list(values) for name, values in fit.grid.items()}),
        shots=list(config.shots),
        repeats=config.repeats,
        features={
            "path": str(path),
            "key": info.key,
            "content": content,
            "dataset": data_set,
            "backbone": backbone,
            "attrs": jsonable({k: v for k, v in info.attrs.items() if k != "class_names"}),
            "n_train": len(y),
            "n_test": len(y_test),
            "n_classes": len(np.unique(np.concatenate([y, y_test]))),
        },
        points=points,
        protocol=(
            f"per point, {config.repeats} seeded class-balanced draws of the train split (one for 'full'); "
            f"parameters by stratified CV on the draw with min({fit.cv}, images per class) folds, "
            f"or with 1 image per class the default {ONE_SHOT_DEFAULTS.get(fit.clf, {})}; scored on the whole test split"
        ),
        record_file=stem + ".json",
    )
    if save:
        atomic_write_text(
            paths.reports_dir(reports_dir) / record.record_file, json.dumps(record.to_dict(), indent=2) + "\n", kind=CURVE_KIND
        )
    return record


def scan_curves(reports_dir: str | os.PathLike[str] | None = None) -> list[CurveRecord]:
    """Every readable curve record under ``<reports>/curves/``, sorted by path (others logged and skipped)."""
    root = paths.reports_dir(reports_dir) / CURVES_DIR
    out = []
    for path in sorted(root.glob("*/*.json")):
        try:
            out.append(CurveRecord.from_dict(json.loads(Path(path).read_text(encoding="utf-8"))))
        except (OSError, ValueError, ReportError) as error:
            log.warning("skipping curve %s: %s", path, error)
    return out

"""``featx.pca``: look at a feature space: a 2-D PCA scatter by class and the variance curve.

PCA is fitted on the (scaled) train split; a class-balanced sample of the test split is
projected onto the first two components and drawn coloured by class, with a legend of
class names. The cumulative explained-variance curve shows how many components the
features really use. Files, under ``<reports>/pca/``, are named after the features::

    <backbone>__<features key>__<scale>__scatter.png
    <backbone>__<features key>__<scale>__variance.png
    <backbone>__<features key>__<scale>.json          numbers behind the plots

Plots are drawn with :mod:`featx.reporting.plots` (matplotlib's Agg canvas) and written atomically.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from featx.cache.reader import CacheInfo, features_content, open_features, read_split, resolve_features
from featx.core import figures, paths
from featx.core.atomic import atomic_write_bytes, atomic_write_text
from featx.core.errors import FitError
from featx.core.hashing import jsonable
from featx.core.ownership import FileKind, json_with
from featx.core.paths import safe_name
from featx.core.schema import Config, PositiveInt, Seed, prepare
from featx.fitting.classifiers import Scale, make_scaler, parse_scale
from featx.fitting.records import source_names

log = logging.getLogger(__name__)

PCA_DIR = "pca"
VARIANCE_MARKS = (0.9, 0.95, 0.99)
#: the numbers behind a feature file's PCA plots, as featx writes them
SUMMARY_KIND = FileKind("PCA summary", json_with("features", "explained_variance_ratio", "scatter_png"))


@dataclass(frozen=True)
class PcaResult:
    """What :func:`pca` wrote and found.

    Attributes:
        scatter_png, variance_png, summary_json: the files written.
        explained_variance_ratio: ``(n_components,)`` per component, descending.
        components_for: smallest number of components reaching 90/95/99% of the variance.
        sample_size: test points drawn in the scatter.
        reused: the files were drawn earlier and found up to date (``skip_existing``).
        scatter_figure, variance_figure: the matplotlib figures drawn now (None when
            reused); :attr:`figures` has both either way.
    """

    scatter_png: Path
    variance_png: Path
    summary_json: Path
    explained_variance_ratio: np.ndarray
    components_for: dict[str, int]
    sample_size: int
    reused: bool = False
    scatter_figure: Any = field(default=None, repr=False, compare=False)
    variance_figure: Any = field(default=None, repr=False, compare=False)

    @property
    def figures(self) -> tuple[Any, Any]:
        """The scatter and the explained-variance curve as matplotlib figures (a notebook
        shows them): those drawn now, or figures showing the PNG files when reused."""
        return (
            self.scatter_figure if self.scatter_figure is not None else figures.image_figure(self.scatter_png),
            self.variance_figure if self.variance_figure is not None else figures.image_figure(self.variance_png),
        )

    def __repr__(self) -> str:
        return (
            f"PcaResult({self.scatter_png.name}: {self.components_for.get('90%', '?')} components hold 90% of the variance, "
            f"{self.sample_size} test points{', reused' if self.reused else ''})"
        )


def balanced_sample(y: np.ndarray, per_class: int, *, seed: int) -> np.ndarray:
    """Indices of up to ``per_class`` random samples of each class, sorted.

    Args:
        y: ``(n_samples,)`` labels.
        per_class: the most samples taken from one class.
        seed: random seed.

    Returns:
        ``(n_selected,)`` row indices.
    """
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(y == label))[:per_class] for label in np.unique(y)]
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.intp)


def components_needed(ratio: np.ndarray, fraction: float) -> int:
    """Smallest number of leading components whose explained variance reaches ``fraction``."""
    cumulative = np.cumsum(ratio)
    return min(int(np.searchsorted(cumulative, fraction - 1e-12)) + 1, len(ratio))


class PcaConfig(Config):
    """What ``featx pca`` draws.

    Attributes:
        scale: scaling fitted on the train split before PCA (as ``featx fit --scale``).
        per_class: test points drawn per class at most.
        seed: seeds the sample of test points.
    """

    scale: Annotated[Scale, prepare(parse_scale)] = Scale.STANDARD
    per_class: PositiveInt = 200
    seed: Seed = 0


def pca(
    features: str | os.PathLike[str],
    config: PcaConfig | None = None,
    *,
    dataset: str | None = "cifar10",
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
    skip_existing: bool = False,
    **config_fields: Any,
) -> PcaResult:
    """Fit PCA on the train split; plot the test split in 2-D and the explained variance.

    Example::

        result = featx.pca("resnet50", featx.PcaConfig(scale="l2", per_class=100))
        result.scatter_png, result.components_for["90%"]

    Args:
        features: an .h5 path, or a backbone name resolved in the cache for ``dataset``.
        config: a :class:`PcaConfig`; or give its fields as keywords (``scale=``,
            ``per_class=``, ``seed=``), which also override a given config.
        dataset: data set folder in the cache, for a backbone name.
        cache_dir: cache root (default ``features/`` or ``FEATX_CACHE_DIR``).
        reports_dir: reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
        skip_existing: return the plots drawn earlier for the same features, scaling,
            sample size and seed, when they are all there, instead of drawing again.

    Returns:
        The files written and the explained-variance figures.

    Raises:
        ConfigError: bad ``scale`` or ``per_class``.
        CacheError: the features are missing, untrusted, or hold NaN/inf.
        FitError: fewer than two train samples or a single feature column.
    """
    if config is None:
        config = PcaConfig(**config_fields)
    elif config_fields:
        config = config.replace(**config_fields)
    scale, per_class, seed = config.scale, config.per_class, config.seed
    path, info, stem, found = _planned(features, config, dataset=dataset, cache_dir=cache_dir, reports_dir=reports_dir)
    data_set, backbone = source_names(info)
    content = features_content(info, ("train", "test"))
    folder = paths.reports_dir(reports_dir) / PCA_DIR
    if skip_existing and found is not None:
        log.info("PCA plots of %s are up to date: %s", path.name, found.scatter_png)
        return found
    X, _ = read_split(path, "train")
    X_test, y_test = read_split(path, "test")
    if X.shape[0] < 2 or X.shape[1] < 2:
        raise FitError(f"{path}: PCA needs at least 2 train samples and 2 feature columns, got {X.shape}")
    if len(y_test) == 0:
        raise FitError(f"{path}: the test split is empty, nothing to plot")

    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(make_scaler(scale), PCA(svd_solver="covariance_eigh" if X.shape[0] >= X.shape[1] else "full"))
    model.fit(X)
    ratio = np.asarray(model[-1].explained_variance_ratio_, dtype=np.float64)
    sample = balanced_sample(y_test, per_class, seed=seed)
    points = model.transform(X_test[sample])[:, :2]
    class_names = info.class_names or [str(i) for i in range(int(y_test.max()) + 1)]
    components_for = {f"{round(f * 100)}%": components_needed(ratio, f) for f in VARIANCE_MARKS}

    title = f"{backbone} ({data_set}, {X.shape[1]}-d, scale {Scale(scale).value})"
    scatter_figure = _scatter_figure(points, y_test[sample], class_names, ratio, f"{title}\ntest split, up to {per_class} points per class")
    variance_figure = _variance_figure(ratio, components_for, title)
    scatter = atomic_write_bytes(folder / f"{stem}__scatter.png", figures.png_bytes(scatter_figure), kind=figures.PNG_KIND)
    variance = atomic_write_bytes(folder / f"{stem}__variance.png", figures.png_bytes(variance_figure), kind=figures.PNG_KIND)
    summary = {
        "features": {"path": str(path), "key": info.key, "content": content, "backbone": backbone, "dataset": data_set},
        "scale": Scale(scale).value,
        "n_train": int(X.shape[0]),
        "feature_dim": int(X.shape[1]),
        "sample_per_class": per_class,
        "sample_size": len(sample),
        "seed": seed,
        "explained_variance_ratio": ratio.tolist(),
        "components_for": components_for,
        "scatter_png": scatter.name,
        "variance_png": variance.name,
    }
    summary_path = atomic_write_text(folder / f"{stem}.json", json.dumps(jsonable(summary), indent=2) + "\n", kind=SUMMARY_KIND)
    log.info("PCA of %s: %s components hold 90%% of the variance; plots in %s", path.name, components_for["90%"], folder)
    return PcaResult(scatter, variance, summary_path, ratio, components_for, len(sample), False, scatter_figure, variance_figure)


def find_existing_pca(
    features: str | os.PathLike[str],
    config: PcaConfig,
    *,
    dataset: str | None = "cifar10",
    cache_dir: str | os.PathLike[str] | None = None,
    reports_dir: str | os.PathLike[str] | None = None,
) -> PcaResult | None:
    """The up-to-date PCA plots of these features and this config, if drawn before (draws nothing).

    Raises:
        CacheError: the features cannot be resolved or trusted.
    """
    return _planned(features, config, dataset=dataset, cache_dir=cache_dir, reports_dir=reports_dir)[3]


def _planned(
    features: str | os.PathLike[str],
    config: PcaConfig,
    *,
    dataset: str | None,
    cache_dir: str | os.PathLike[str] | None,
    reports_dir: str | os.PathLike[str] | None,
) -> tuple[Path, CacheInfo, str, PcaResult | None]:
    """The features file, its attributes, the plots' file stem, and the plots drawn earlier that match."""
    path = resolve_features(features, dataset=dataset, cache_dir=cache_dir)
    info = open_features(path, splits=("train", "test"))
    _, backbone = source_names(info)
    stem = pca_stem(backbone, info.key, config.scale)
    summary = paths.reports_dir(reports_dir) / PCA_DIR / f"{stem}.json"
    content = features_content(info, ("train", "test"))
    return path, info, stem, existing_pca(summary, key=info.key, content=content, per_class=config.per_class, seed=config.seed)


def pca_stem(backbone: str, key: str, scale: Scale | str) -> str:
    """``<backbone>__<features key>__<scale>``: the common name of one feature file's PCA files."""
    return f"{safe_name(backbone)}__{safe_name(key)}__{Scale(scale).value}"


def existing_pca(
    summary_json: Path, *, key: str, content: str | None, per_class: int | None = None, seed: int | None = None
) -> PcaResult | None:
    """The PCA files described by ``summary_json``, when they are all there and match.

    Args:
        summary_json: ``<reports>/pca/<stem>.json``.
        key: the features key the plots must be of.
        content: what the features must be (their content key); None (a run record
            written before it was recorded) compares ``key`` only.
        per_class, seed: the sample they must have been drawn with (None: any).

    Returns:
        The result read back, or None when the summary is missing, unreadable, of
        other features or another sample, or a plot is missing.
    """
    try:
        summary = json.loads(summary_json.read_text(encoding="utf-8"))
        scatter = summary_json.parent / summary["scatter_png"]
        variance = summary_json.parent / summary["variance_png"]
        drawn = summary["features"]
        same = drawn["key"] == key and (content is None or drawn.get("content") == content)
        matches = same and per_class in (None, summary["sample_per_class"]) and seed in (None, summary["seed"])
        if not (matches and scatter.is_file() and variance.is_file()):
            return None
        return PcaResult(
            scatter,
            variance,
            summary_json,
            np.asarray(summary["explained_variance_ratio"], dtype=np.float64),
            dict(summary["components_for"]),
            int(summary["sample_size"]),
            reused=True,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _scatter_figure(points: np.ndarray, labels: np.ndarray, class_names: list[str], ratio: np.ndarray, title: str) -> Any:
    import matplotlib

    present = np.unique(labels)
    colours = matplotlib.colormaps["tab10" if len(present) <= 10 else "tab20" if len(present) <= 20 else "turbo"]
    figure = figures.figure(7.5, 6.0)
    axes = figure.add_subplot()
    for position, label in enumerate(present):
        colour = colours(position if len(present) <= 20 else position / max(len(present) - 1, 1))
        mask = labels == label
        name = class_names[label] if label < len(class_names) else str(label)
        axes.scatter(points[mask, 0], points[mask, 1], s=9, alpha=0.7, color=colour, label=name, linewidths=0)
    axes.set_xlabel(f"PC 1 ({ratio[0]:.1%} of variance)")
    axes.set_ylabel(f"PC 2 ({ratio[1]:.1%} of variance)" if len(ratio) > 1 else "PC 2")
    axes.set_title(title)
    if len(present) <= 30:
        axes.legend(
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize="small",
            markerscale=2,
            frameon=False,
            ncols=1 if len(present) <= 15 else 2,
        )
    return figure


def _variance_figure(ratio: np.ndarray, components_for: dict[str, int], title: str) -> Any:
    from matplotlib.ticker import FuncFormatter

    figure = figures.figure(7.0, 4.5)
    axes = figure.add_subplot()
    counts = np.arange(1, len(ratio) + 1)
    axes.plot(counts, np.cumsum(ratio), color="tab:blue")
    for mark, count in components_for.items():
        level = float(mark.rstrip("%")) / 100
        axes.plot([count], [level], marker="o", color="tab:red", markersize=4)
        axes.annotate(f"{mark}: {count}", (count, level), textcoords="offset points", xytext=(-6, 4), ha="right", fontsize="small")
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("number of components")
    axes.set_ylabel("cumulative explained variance")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    return figure

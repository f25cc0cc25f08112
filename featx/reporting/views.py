"""The report's views: what each part of the page shows, built from the data model.

A :class:`TableView` per test set (the backbone x classifier table), a
:class:`FeatureView` per backbone (its extraction facts and PCA plots) and a
:class:`RunView` per run (grid curve, confusion matrix, per-class scores, how it was
made): frozen values that the Jinja2 template renders, with the plots already drawn
(:mod:`featx.reporting.plots`) and embedded as ``data:`` URIs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from featx.core import figures
from featx.core.errors import FeatxError
from featx.fitting.classifiers import classifier_label
from featx.fitting.grids import format_point, format_short, format_spec
from featx.fitting.records import FeatureSource, RunRecord
from featx.fitting.statistics import INTERVAL_METHOD, PAIRED_TEST, Comparison
from featx.reporting import plots
from featx.reporting.model import (
    Selection,
    compare_with_best,
    contrast_keys,
    extraction_frame,
    input_text,
    row_labels,
    triple_text,
    weights_kind,
    weights_text,
)
from featx.reporting.provenance import extract_command, fit_command

log = logging.getLogger(__name__)

#: ``thumbnails(features attrs, test rows) -> {row: PNG bytes}``: the images behind cache rows
#: (the CLI passes :func:`featx.extraction.thumbnails.row_thumbnails`; without one, no strips)
ThumbnailSource = Callable[[Mapping[str, Any], Sequence[int]], Mapping[int, bytes]]
#: error strips per run: the most confused pairs, and images per pair
STRIP_PAIRS = 3
STRIP_IMAGES = 8


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def pp(value: float) -> str:
    return f"{value * 100:.2f}"


def anchor(prefix: str, *parts: object) -> str:
    return "-".join([prefix, *("".join(c if c.isalnum() else "-" for c in str(p)) for p in parts)])


@dataclass(frozen=True)
class Cell:
    """One backbone x classifier result in a comparison table."""

    test: float
    cv_mean: float
    cv_std: float
    params: str
    anchor: str
    best: bool
    flags: tuple[str, ...] = ()
    ci: tuple[float, float] | None = None  # 95% interval of the test accuracy
    p_value: float | None = None  # exact McNemar against the best cell (Holm-adjusted)
    tied: bool | None = None  # not significantly worse than the best (None: cannot be tested)
    folds: int = 5


@dataclass(frozen=True)
class Row:
    """One feature file's line of a comparison table."""

    label: str
    anchor: str
    weights: str
    random: bool
    cells: tuple[Cell | None, ...]
    contrast: bool = False  # random weights shown beside the same architecture's pretrained ones


@dataclass(frozen=True)
class Figure:
    """An embedded plot."""

    uri: str
    alt: str


@dataclass(frozen=True)
class PcaView:
    """The PCA plots of one feature file at one scaling (or why there are none)."""

    scale: str
    scatter: Figure | None = None
    variance: Figure | None = None
    summary: str = ""
    note: str = ""


@dataclass(frozen=True)
class RunView:
    """The detail of one run (``grid_curve`` None for a one-point grid: nothing to draw)."""

    anchor: str
    title: str
    random: bool
    grid_curve: Figure | None
    confusion: Figure
    per_class: pd.DataFrame
    facts: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]
    command: str
    contrast: bool = False
    confused: pd.DataFrame | None = None  # the most confused class pairs
    strips: tuple[ErrorStrip, ...] = ()  # misclassified test images per confused pair
    curve_note: str = ""


@dataclass(frozen=True)
class CurvesView:
    """The data-efficiency curves of one test set: the plot and its numbers."""

    anchor: str
    title: str
    figure: Figure
    numbers: pd.DataFrame


def curves_views(frame: pd.DataFrame) -> list[CurvesView]:
    """One plot per test set (a line per backbone and classifier) from :func:`~featx.reporting.model.curves_frame`."""
    views = []
    for test_set, group in frame.groupby("test_set", sort=False):
        lines = {}
        for (backbone, classifier), line in group.groupby(["backbone", "classifier"], sort=False):
            line = line.sort_values("images_per_class", key=lambda c: c.astype(float))
            lines[f"{backbone} + {classifier}"] = (line["images_per_class"].astype(float), line["mean"], line["std"])
        dataset = str(group["dataset"].iloc[0])
        png = plots.data_efficiency_png(lines, title=f"{dataset}: test accuracy against labelled images per class")
        numbers = pd.DataFrame(
            {
                "backbone": group["backbone"],
                "classifier": group["classifier"],
                "images per class": group["shots"].astype(str),
                "test accuracy": [f"{m * 100:.2f}% ± {s * 100:.2f}" for m, s in zip(group["mean"], group["std"])],
                "draws": group["n_repeats"],
                "parameters by": group["selection"],
            }
        )
        views.append(
            CurvesView(
                anchor("curves", dataset, test_set[-12:]),
                dataset,
                Figure(figures.data_uri(png), f"data-efficiency curves on {dataset}"),
                numbers,
            )
        )
    return views


@dataclass(frozen=True)
class ErrorStrip:
    """Thumbnails of test images of one confused pair: ``(image, caption)`` each."""

    title: str
    images: tuple[tuple[Figure, str], ...]


@dataclass(frozen=True)
class FeatureView:
    """One feature file: how it was made, its PCA plots and its runs."""

    anchor: str
    label: str
    weights: str
    random: bool
    facts: tuple[tuple[str, str], ...]
    pca: tuple[PcaView, ...]
    runs: tuple[RunView, ...]
    command: str
    contrast: bool = False


@dataclass(frozen=True)
class TableView:
    """One test set: its comparison table, extraction facts and the detail of its rows."""

    anchor: str
    title: str
    subtitle: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    best: str
    extraction: pd.DataFrame
    features: tuple[FeatureView, ...]
    n_random: int  # rows with random weights that are not contrasts (the page's banner)
    transfer: tuple[str, ...] = ()  # what the pretrained weights add: against their random twin, against raw pixels
    folds_note: str = ""  # the runs of this table used different numbers of CV folds
    ties_note: str = ""  # how "tied with best" was decided, and what could not be tested


def table_view(group: pd.DataFrame, selection: Selection, root: Path, *, pca: bool, thumbnails: ThumbnailSource | None = None) -> TableView:
    records: list[RunRecord] = list(group["record"])
    first = records[0].features
    labels = row_labels(group)
    columns = tuple(dict.fromkeys(group.sort_values("column_order", kind="stable")["column"]))
    row_keys = list(dict.fromkeys(group["features_id"]))
    table = group.pivot(index="features_id", columns="column", values="record").reindex(index=row_keys, columns=list(columns))
    best_value = float(group["test_accuracy"].max())
    sources = {r.features.identity: r.features for r in records}
    contrasts = contrast_keys(sources)
    versus = compare_with_best(records)
    folds = sorted({r.cv for r in records})
    rows = []
    for key, line in table.iterrows():
        source = sources[key]
        cells = []
        for record in line:
            cells.append(
                None
                if not isinstance(record, RunRecord)
                else Cell(
                    test=record.test_accuracy,
                    cv_mean=record.cv_best_score,
                    cv_std=record.cv_best_std,
                    params=format_point(record.best_params, short=True),
                    anchor=anchor("run", record.run_key),
                    best=record.test_accuracy == best_value,
                    flags=tuple(run_flags(record)),
                    ci=tuple(record.test_accuracy_ci95) if record.test_accuracy_ci95 else None,  # type: ignore[arg-type]
                    p_value=versus[record.run_key].p_adjusted,
                    tied=versus[record.run_key].tied,
                    folds=record.cv,
                )
            )
        rows.append(
            Row(
                labels[key],
                anchor("features", key),
                weights_text(source.attrs),
                weights_kind(source.attrs) == "random",
                tuple(cells),
                contrast=key in contrasts,
            )
        )
    best, ties_note = best_sentence(records, labels, versus, best_value)
    features = []
    for key in row_keys:
        runs = [r for r in records if r.features.identity == key]
        features.append(_feature_view(runs, labels[key], selection, root, pca=pca, contrast=key in contrasts, thumbnails=thumbnails))
    n_classes = len(records[0].class_names)
    limit = first.attrs.get("limit")
    subtitle = f"{first.n_train:,} train / {first.n_test:,} test images, {n_classes} classes"
    if limit not in (None, ""):
        subtitle += f", subset of at most {limit} images per split (--limit)"
    location = first.attrs.get("dataset_location")
    if location:
        subtitle += f"; read from {location}"
    return TableView(
        anchor=anchor("dataset", first.dataset, first.key),
        title=first.dataset,
        subtitle=subtitle,
        columns=columns,
        rows=tuple(rows),
        best=best,
        extraction=extraction_frame(records, labels),
        features=tuple(features),
        n_random=sum(row.random and not row.contrast for row in rows),
        transfer=tuple(transfer_lines(group, sources, contrasts)),
        folds_note=(
            f"The runs of this table used different numbers of CV folds ({', '.join(map(str, folds))}): "
            "each cell names its fold count; their CV numbers are not directly comparable."
            if len(folds) > 1
            else ""
        ),
        ties_note=ties_note,
    )


def best_sentence(
    records: Sequence[RunRecord], labels: dict[str, str], versus: dict[str, Comparison], best_value: float
) -> tuple[str, str]:
    """The table's summary sentence (every cell tied with the best, not one winner) and how ties were decided."""

    def name(r: RunRecord) -> str:
        return f"{labels[r.features.identity]} + {classifier_label(r.clf, r.scale, r.pca)}"

    ordered = sorted(records, key=lambda r: -r.test_accuracy)
    winners = [r for r in ordered if r.test_accuracy == best_value]
    tied = [r for r in ordered if r.test_accuracy != best_value and versus[r.run_key].tied]
    untested = [r for r in ordered if versus[r.run_key].tied is None]
    if len(untested) + len(winners) >= len(records):
        sentence = f"Best: {' and '.join(name(r) for r in winners)}, {pct(best_value)} test accuracy."
    elif tied:
        sentence = (
            f"Best, or tied with the best: {', '.join(f'{name(r)} ({pct(r.test_accuracy)})' for r in winners + tied)}; "
            f"{len(tied)} cell(s) not significantly worse than {pct(best_value)}."
        )
    else:
        sentence = (
            f"Best: {' and '.join(name(r) for r in winners)}, {pct(best_value)} test accuracy; "
            f"every other cell{' tested' if untested else ''} is significantly worse."
        )
    note = (
        f"Tied with best (≈): not significantly worse than the best cell at 5%, by an {PAIRED_TEST}. "
        f"Intervals: {INTERVAL_METHOD} over the test images."
    )
    if untested:
        note += f" {len(untested)} cell(s) cannot be tested: their records (an older featx) do not list which test images they got wrong."
    return sentence, note


def transfer_lines(group: pd.DataFrame, sources: dict[str, FeatureSource], contrasts: set[str]) -> list[str]:
    """What transfer learning buys in one table, from each row's best test accuracy: each
    pretrained architecture against its random-weights contrast, and against raw pixels."""
    best = group.groupby("features_id")["test_accuracy"].max()

    def architecture(key: str) -> str:
        return str(sources[key].attrs.get("architecture") or sources[key].backbone)

    trained = {key for key, f in sources.items() if weights_kind(f.attrs) in ("pretrained", "file")}
    pixels = [key for key, f in sources.items() if weights_kind(f.attrs) == "none"]
    lines = []
    for key in sorted(trained, key=lambda k: -best[k]):
        twins = [c for c in contrasts if architecture(c) == architecture(key)]
        if twins:
            random = max(best[c] for c in twins)
            lines.append(
                f"{architecture(key)}: pretrained {pct(best[key])} against {pct(random)} with random weights "
                f"({pp(best[key] - random)} points from the pretrained weights)"
            )
    if pixels and trained:
        top, raw = max(trained, key=lambda k: best[k]), max(best[k] for k in pixels)
        lines.append(
            f"raw pixels: {pct(raw)}; the best pretrained features ({architecture(top)}) are {pp(best[top] - raw)} points above them"
        )
    return lines


def run_flags(record: RunRecord) -> list[str]:
    """Things a careful reader should know about a run: a best point at the grid's edge, solver warnings.

    A best value at the edge of a numeric grid (of three values or more) is flagged when
    it scores strictly better than its neighbour inside the grid: the optimum may lie
    beyond. ``k = 1`` is a natural edge and never flagged.
    """
    flags = []
    scores = {json.dumps(p.params, sort_keys=True): p.mean for p in record.cv_results}
    for name, values in record.grid.items():
        numbers = sorted(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
        if len(numbers) < 3 or len(numbers) != len(values) or name not in record.best_params:
            continue
        chosen = record.best_params[name]
        if chosen not in (numbers[0], numbers[-1]) or (name == "n_neighbors" and chosen == 1):
            continue
        neighbour = numbers[-2] if chosen == numbers[-1] else numbers[1]
        inside = scores.get(json.dumps({**record.best_params, name: neighbour}, sort_keys=True))
        if inside is not None and record.cv_best_score > inside:
            side = "largest" if chosen == numbers[-1] else "smallest"
            way = "upwards" if chosen == numbers[-1] else "downwards"
            flags.append(f"best {name}={format_short(chosen)} is the {side} value of the grid: widen it {way}")
    if record.warnings:
        flags.append(f"{len(record.warnings)} solver warning(s), e.g. {record.warnings[0][:160]}")
    return flags


def _feature_view(
    runs: Sequence[RunRecord],
    label: str,
    selection: Selection,
    root: Path,
    *,
    pca: bool,
    contrast: bool,
    thumbnails: ThumbnailSource | None,
) -> FeatureView:
    f = runs[0].features
    a = f.attrs
    random = weights_kind(a) == "random"
    facts = [
        (
            "backbone",
            f"{f.backbone} (timm {a.get('architecture', f.backbone)}{', tag ' + str(a['pretrained_tag']) if a.get('pretrained_tag') and not random else ''})",
        ),
        ("weights", weights_text(a)),
        ("input", input_text(a)),
        ("mean / std", f"{triple_text(a.get('mean'))} / {triple_text(a.get('std'))}"),
        ("precision", str(a.get("precision", "-"))),
        ("features", f"{f.feature_dim:,}-d, {f.n_train:,} train + {f.n_test:,} test rows"),
    ]
    for name, split in f.splits.items():
        rate = split.get("images_per_second")
        facts.append(
            (
                f"{name} split",
                f"{float(split.get('seconds') or 0):,.1f} s, {float(rate or 0):,.0f} images/s on {split.get('device') or '-'}",
            )
        )
    facts += [
        ("versions", f"timm {a.get('timm_version', '?')}, torch {a.get('torch_version', '?')}, featx {a.get('featx_version', '?')}"),
        ("created", str(a.get("created", "-"))),
        ("cache file", f"{f.path} (key {f.key})"),
    ]
    scales = list(dict.fromkeys(r.scale for r in runs))
    return FeatureView(
        anchor=anchor("features", f.identity),
        label=label,
        weights=weights_text(a),
        random=random,
        facts=tuple(facts),
        pca=tuple(_pca_view(f.path, f.backbone, f.key, f.content, scale, root, draw=pca) for scale in scales),
        runs=tuple(_run_view(r, label, selection, contrast=contrast, thumbnails=thumbnails) for r in runs),
        command=extract_command(a, f.backbone),
        contrast=contrast,
    )


def solver_text(record: RunRecord) -> str:
    """How the grid was searched: scikit-learn's estimators, or the torch solvers and how they ran."""
    if record.solver != "torch":
        return "scikit-learn (each fold and grid point fitted as GridSearchCV does; the best point refit)"
    info = record.solver_info
    parts = [
        f"torch on {info.get('device', '?')}: every fold and grid point in batched solves, then the whole split at the chosen point (no lbfgs or liblinear refit)"
    ]
    if info.get("iterations"):
        parts.append(
            f"{info['iterations']:,} L-BFGS iterations in all, largest final gradient {info.get('max_gradient', 0.0):.1e} "
            "(scikit-learn's lbfgs stops at 1e-4 in these units)"
        )
    if info.get("max_duality_gap") is not None:
        model = f"the model's objective within {info['model_duality_gap']:.1e} of its optimum's, " if "model_duality_gap" in info else ""
        parts.append(
            f"{model}every objective within {info['max_duality_gap']:.1e} of its optimum's "
            "(duality gaps over the objective: certified bounds, loose at the largest C values)"
        )
    if info.get("streamed"):
        parts.append("the features streamed to the device in row blocks")
    return "; ".join(parts)


def _pca_view(features_path: str, backbone: str, key: str, content: str | None, scale: str, root: Path, *, draw: bool) -> PcaView:
    from featx.fitting.projection import PCA_DIR, existing_pca, pca, pca_stem

    found = existing_pca(root / PCA_DIR / f"{pca_stem(backbone, key, scale)}.json", key=key, content=content)
    if found is None and draw:
        if not Path(features_path).is_file():
            return PcaView(scale, note=f"no PCA plot: the features file {features_path} is no longer in the cache")
        try:
            found = pca(features_path, dataset=None, scale=scale, reports_dir=root)
        except FeatxError as error:
            return PcaView(scale, note=f"no PCA plot: {error}")
    if found is None:
        return PcaView(scale, note="no PCA plot yet (featx pca, or featx report without --no-pca, draws it)")
    marks = ", ".join(f"{count} for {mark}" for mark, count in found.components_for.items())
    return PcaView(
        scale,
        scatter=Figure(figures.data_uri(found.scatter_png.read_bytes()), f"PCA scatter of the {backbone} features, scale {scale}"),
        variance=Figure(figures.data_uri(found.variance_png.read_bytes()), f"explained variance of the {backbone} features"),
        summary=f"PC 1 and PC 2 explain {found.explained_variance_ratio[:2].sum():.1%} of the variance; components needed: {marks}.",
    )


def _run_view(record: RunRecord, label: str, selection: Selection, *, contrast: bool, thumbnails: ThumbnailSource | None) -> RunView:
    column = classifier_label(record.clf, record.scale, record.pca)
    points = [p.params for p in record.cv_results]
    curve = None
    if len(points) > 1:
        png = plots.grid_curve_png(
            points,
            [p.mean for p in record.cv_results],
            [p.std for p in record.cv_results],
            grid=sampled_grid(record),
            best=record.best_params,
            title=f"{column} on {label}: {record.cv}-fold CV" + (f", {len(points)} random points" if record.search == "random" else ""),
        )
        curve = Figure(figures.data_uri(png), f"CV accuracy over the grid of {column} on {label}")
    confusion = plots.confusion_png(
        record.confusion_matrix, record.class_names, title=f"{column} on {label}: test accuracy {pct(record.test_accuracy)}"
    )
    per_class = pd.DataFrame(
        {
            "class": [c.name for c in record.per_class],
            "precision": [f"{c.precision:.3f}" for c in record.per_class],
            "recall": [f"{c.recall:.3f}" for c in record.per_class],
            "F1": [f"{c.f1:.3f}" for c in record.per_class],
            "support": [f"{c.support:,}" for c in record.per_class],
        }
    )
    facts = [
        (
            "test accuracy",
            pct(record.test_accuracy)
            + (
                f" (95% interval {pct(record.test_accuracy_ci95[0])} to {pct(record.test_accuracy_ci95[1])})"
                if record.test_accuracy_ci95
                else ""
            )
            + (f"; balanced {pct(record.balanced_accuracy)}" if record.balanced_accuracy is not None else "")
            + (f"; top-5 {pct(record.top5_accuracy)}" if record.top5_accuracy is not None else "")
            + f"; macro F1 {record.macro_f1:.4f}"
            + (f"; log-loss {record.log_loss:.4f}" if record.log_loss is not None else ""),
        ),
        (
            "best point",
            f"{format_point(record.best_params, short=True)}: CV accuracy {pct(record.cv_best_score)} ± {pp(record.cv_best_std)}",
        ),
        ("grid", "; ".join(f"{name}: {format_spec(values)}" for name, values in record.grid.items())),
        ("search", search_text(record)),
        (
            "protocol",
            f"{record.cv}-fold stratified CV on the {record.features.n_train:,} train images (seed {record.seed}), "
            f"best point refit on all of them, scored once on the {record.features.n_test:,} test images",
        ),
        ("pipeline", " → ".join(record.pipeline)),
        ("solver", solver_text(record)),
        ("timings", f"search {record.search_seconds:,.1f} s, refit {record.fit_seconds:,.1f} s, predict {record.predict_seconds:,.2f} s"),
        ("record", f"{record.record_file} ({record.created}, featx {record.featx_version})"),
    ]
    notes = list(run_flags(record)) + [f"solver warning: {w}" for w in record.warnings[1:4]]
    older = selection.superseded.get(record.run_key, 0)
    if older:
        notes.append(f"{older} older record(s) of this backbone and classifier exist (other grid or protocol); the newest is shown")
    return RunView(
        anchor=anchor("run", record.run_key),
        title=f"{label} × {column}",
        random=weights_kind(record.features.attrs) == "random",
        grid_curve=curve,
        confusion=Figure(figures.data_uri(confusion), f"confusion matrix of {column} on {label}"),
        per_class=per_class,
        facts=tuple(facts),
        notes=tuple(notes),
        command=fit_command(record),
        contrast=contrast,
        confused=confused_frame(record),
        strips=error_strips(record, thumbnails) if thumbnails is not None else (),
        curve_note="" if curve else f"one grid point ({format_point(record.best_params, short=True) or 'the defaults'}): no curve to draw",
    )


def sampled_grid(record: RunRecord) -> dict[str, list[object]]:
    """The values the plot spans: the grid, or for a random search the values drawn (one line through them)."""
    if record.search != "random":
        return {name: list(values) for name, values in record.grid.items()}
    drawn: dict[str, list[object]] = {}
    for point in record.cv_results:
        for name, value in point.params.items():
            drawn.setdefault(name, [])
            if value not in drawn[name]:
                drawn[name].append(value)
    numeric = [n for n, v in drawn.items() if all(isinstance(x, (int, float)) for x in v) and len(v) > 1]
    axis = max(numeric, key=lambda n: len(drawn[n]), default=None)
    return {name: sorted(values) if name == axis else values[:1] for name, values in drawn.items()}  # type: ignore[type-var]


def error_strips(record: RunRecord, thumbnails: ThumbnailSource) -> tuple[ErrorStrip, ...]:
    """Misclassified test images of the run's most confused pairs, with true and predicted labels.

    The images come from ``thumbnails`` by cache row (the record lists each wrong row);
    a run whose images cannot be found gets no strips.
    """
    if not record.misclassified or not record.confused_pairs:
        return ()
    index = {name: i for i, name in enumerate(record.class_names)}
    chosen = []
    for pair in record.confused_pairs[:STRIP_PAIRS]:
        t, p = index.get(pair.true), index.get(pair.predicted)
        rows = [row for row, true, predicted in record.misclassified if true == t and predicted == p][:STRIP_IMAGES]
        chosen.append((pair, rows))
    try:
        images = thumbnails(record.features.attrs, [row for _, rows in chosen for row in rows])
    except (FeatxError, OSError) as error:
        log.info("no error strips for %s: %s", record.record_file, error)
        return ()
    strips = []
    for pair, rows in chosen:
        shown = tuple(
            (Figure(figures.data_uri(images[row]), f"test image {row}: true {pair.true}, predicted {pair.predicted}"), f"#{row}")
            for row in rows
            if row in images
        )
        if shown:
            strips.append(
                ErrorStrip(f"true {pair.true}, predicted {pair.predicted} ({pair.count:,} images, {pair.share:.1%} of {pair.true})", shown)
            )
    return tuple(strips)


def search_text(record: RunRecord) -> str:
    """How the points were chosen: every grid point, or random draws (seeded)."""
    if record.search != "random":
        return f"grid: all {len(record.cv_results)} point(s)"
    info = record.search_info
    return f"random: {info.get('n_iter', len(record.cv_results))} points drawn with seed {info.get('seed', record.seed)}, {info.get('draws', '')}"


def confused_frame(record: RunRecord) -> pd.DataFrame | None:
    """The most confused class pairs of a run (count and share of the true class), or None when there are none."""
    if not record.confused_pairs:
        return None
    return pd.DataFrame(
        {
            "true class": [p.true for p in record.confused_pairs],
            "predicted as": [p.predicted for p in record.confused_pairs],
            "count": [f"{p.count:,}" for p in record.confused_pairs],
            "share of the true class": [f"{p.share:.1%}" for p in record.confused_pairs],
        }
    )

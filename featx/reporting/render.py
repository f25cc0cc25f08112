"""``featx.report``: every run record under ``reports/`` on one self-contained HTML page.

The page answers "which backbone and which classifier are best on my images?": per test
set, a backbone x classifier table of test accuracy (best cell marked) with the CV score
and the chosen parameters; then, per backbone, how its features were made and their PCA
plots, and per run the grid curve, the confusion matrix and per-class scores; last, how
the page was made (versions, the commands that reproduce every number, dates).

It only reads: run records (:func:`featx.fitting.records.iter_records`), the feature files'
attributes as the records carry them, PCA plots under ``reports/pca/`` (drawn with
:func:`featx.pca` when missing and the features are still cached), and the manifests
``featx run`` writes under ``reports/pipelines/``. Tables are pandas frames, plots are
matplotlib PNGs embedded as ``data:`` URIs, and the HTML comes from the Jinja2 template
``featx/reporting/templates/report.html.j2`` with autoescaping on. Beside the page:
``comparison.csv`` (one row per backbone x classifier, every number) and
``comparison.md`` (the tables as Markdown). All three are written atomically.

Which records make a cell: rows are feature files (a backbone with its weights and
preprocessing), tables are test sets (the data set's identity: content, ``--limit``,
split seed), columns are classifiers with their scaling and PCA. When several records
fall into one cell (the same fit asked again with another grid), the newest is shown and
the others are counted in the cell's detail. Features made with random weights are
flagged on the page, in the table and in every run of them.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from featx._version import __version__
from featx.core import figures, paths
from featx.core.atomic import atomic_write_text
from featx.core.errors import FeatxError, ReportError
from featx.fitting.classifiers import CLASSIFIERS, Scale
from featx.fitting.grids import format_point, format_short, format_spec, format_value
from featx.fitting.records import RUNS_DIR, RunRecord, iter_records
from featx.reporting import plots

log = logging.getLogger(__name__)

REPORT_FILE = "index.html"
CSV_FILE = "comparison.csv"
MARKDOWN_FILE = "comparison.md"
MANIFEST_DIR = "pipelines"
TEMPLATE = "report.html.j2"
CLASSIC_SCALE = Scale.STANDARD.value


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`report` wrote.

    Attributes:
        html: the page.
        csv: every backbone x classifier result, one row each.
        markdown: the comparison tables as Markdown.
        n_runs: runs shown (one per cell).
        n_tables: test sets (one table each).
        random_weights: whether any features shown were made with random weights.
    """

    html: Path
    csv: Path
    markdown: Path
    n_runs: int
    n_tables: int
    random_weights: bool


# --------------------------------------------------------------------------- naming


def classifier_label(clf: str, scale: str, pca: int | None) -> str:
    """A classifier column's name: ``logreg``, ``logreg (l2)``, ``knn (none, PCA 256)``.

    The standard scaling without PCA (featx fit's default) is the bare name.
    """
    extras = [] if scale == CLASSIC_SCALE else [scale]
    if pca:
        extras.append(f"PCA {pca}")
    return f"{clf} ({', '.join(extras)})" if extras else clf


def weights_kind(attrs: Mapping[str, Any]) -> str:
    """``pretrained``, ``file``, ``random`` or ``unknown``, from a feature file's attributes."""
    mode = str(attrs.get("weights_mode") or "")
    if mode in ("pretrained", "file", "random"):
        return mode
    weights = str(attrs.get("weights") or "")
    for kind in ("pretrained", "file", "random"):
        if weights.startswith(kind):
            return kind
    return "unknown"


def weights_text(attrs: Mapping[str, Any]) -> str:
    """How the weights read in the report: ``pretrained (timm/resnet50.a1_in1k)``, ``RANDOM (seed 0)``..."""
    kind, weights = weights_kind(attrs), str(attrs.get("weights") or "")
    if kind == "pretrained":
        return f"pretrained ({weights.partition(':')[2] or weights})"
    if kind == "file":
        sha = weights.rpartition(":")[2]
        where = str(attrs.get("weights_path") or "")
        return f"checkpoint {Path(where).name + ' ' if where else ''}(sha256 {sha[:12]})"
    if kind == "random":
        seed = weights.partition("seed=")[2]
        return f"RANDOM{f' (seed {seed})' if seed else ''}"
    return "unknown"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _pp(value: float) -> str:
    return f"{value * 100:.2f}"


def _size(attrs: Mapping[str, Any]) -> str:
    size = attrs.get("input_size")
    if isinstance(size, (list, tuple)) and len(size) == 3:
        return f"{size[1]}×{size[2]}"
    return "-"


def _anchor(prefix: str, *parts: object) -> str:
    return "-".join([prefix, *("".join(c if c.isalnum() else "-" for c in str(p)) for p in parts)])


# --------------------------------------------------------------------------- the model of the page


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


@dataclass(frozen=True)
class Row:
    """One feature file's line of a comparison table."""

    label: str
    anchor: str
    weights: str
    random: bool
    cells: tuple[Cell | None, ...]


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
    """The detail of one run."""

    anchor: str
    title: str
    random: bool
    grid_curve: Figure
    confusion: Figure
    per_class: pd.DataFrame
    facts: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]
    command: str


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
    n_random: int


@dataclass(frozen=True)
class Manifest:
    """A ``featx run`` of a pipeline, as its manifest under ``reports/pipelines/`` says."""

    name: str
    command: str
    finished: str
    description: str
    counts: str


@dataclass
class _Selection:
    """The runs shown: one record per (test set, feature file, classifier column)."""

    frame: pd.DataFrame  # one row per record shown, in page order
    superseded: dict[str, int] = field(default_factory=dict)  # run key shown -> older records of its cell


# --------------------------------------------------------------------------- entry point


def report(
    reports_dir: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    pca: bool = True,
    command: str | None = None,
) -> ReportFiles:
    """Write the HTML report of every run record under the reports root, with CSV and Markdown.

    Example::

        files = featx.report()          # reports/index.html, comparison.csv, comparison.md
        files.html

    Args:
        reports_dir: reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
        out: the HTML file to write (default ``<reports_dir>/index.html``); the CSV and
            Markdown files go beside it.
        pca: draw the PCA plots of features that have none yet under ``reports/pca/``
            (reads the features when they are still cached); False shows only existing ones.
        command: the command line that asked for the report, for the provenance block.

    Returns:
        The files written and what they hold.

    Raises:
        ReportError: there are no readable run records.
    """
    root = paths.reports_dir(reports_dir)
    records = list(iter_records(root))
    if not records:
        raise ReportError(
            f"no run records under {root / RUNS_DIR}; run `featx fit` (or `featx run PIPELINE.yaml`, or `featx demo`) first"
        )
    html_path = Path(out).expanduser() if out is not None else root / REPORT_FILE
    selection = select_runs(records)
    tables = [_table_view(frame, selection, root, pca=pca) for _, frame in selection.frame.groupby("group", sort=False)]
    manifests = read_manifests(root)
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    shown = list(selection.frame["record"])
    n_random = sum(t.n_random for t in tables)
    context = {
        "title": "featx report",
        "generated": generated,
        "featx_version": __version__,
        "tables": tables,
        "n_runs": len(shown),
        "n_random": n_random,
        "random_labels": sorted({row.label for t in tables for row in t.rows if row.random}),
        "manifests": manifests,
        "provenance": _provenance(shown, command=command or _default_command(reports_dir, out), generated=generated),
        "reports_dir": str(root),
    }
    html = render(context)
    csv_path, md_path = html_path.with_name(CSV_FILE), html_path.with_name(MARKDOWN_FILE)
    atomic_write_text(csv_path, comparison_frame(selection).to_csv(index=False))
    atomic_write_text(md_path, comparison_markdown(tables, generated=generated))
    atomic_write_text(html_path, html)
    log.info("report: %d run(s) in %d table(s): %s", len(shown), len(tables), html_path)
    return ReportFiles(html_path, csv_path, md_path, len(shown), len(tables), n_random > 0)


def _default_command(reports_dir: str | os.PathLike[str] | None, out: str | os.PathLike[str] | None) -> str:
    parts = ["featx", "report"]
    if reports_dir is not None:
        parts += ["--reports-dir", str(reports_dir)]
    if out is not None:
        parts += ["--out", str(out)]
    return shlex.join(parts)


def render(context: Mapping[str, Any]) -> str:
    """The page from the Jinja2 template (autoescaped: record text never becomes markup)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("featx.reporting", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = _pct
    env.filters["pp"] = _pp
    return env.get_template(TEMPLATE).render(**context)


# --------------------------------------------------------------------------- selecting and tabulating


def test_set_key(record: RunRecord) -> str:
    """What makes two runs comparable: the same data set identity (content, limit, split).

    Files without the identity attribute (written by other tools) fall back to the data
    set name and split sizes.
    """
    identity = record.features.attrs.get("dataset_identity")
    if isinstance(identity, Mapping) and identity:
        return record.features.dataset + "|" + json.dumps(identity, sort_keys=True)
    return f"{record.features.dataset}|{record.features.n_train}/{record.features.n_test}"


def select_runs(records: Iterable[RunRecord]) -> _Selection:
    """One record per cell (the newest), in page order.

    Tables (test sets) are in the order of their first record; rows by their best test
    accuracy, best first; columns in the classifier registry's order.
    """
    order = {name: i for i, name in enumerate(CLASSIFIERS)}
    frame = pd.DataFrame([
        {
            "group": test_set_key(r),
            "features_key": r.features.key,
            "column": classifier_label(r.clf, r.scale, r.pca),
            "column_order": (order.get(r.clf, len(order)), r.scale != CLASSIC_SCALE, r.pca or 0),
            "created": r.created,
            "test_accuracy": r.test_accuracy,
            "run_key": r.run_key,
            "record": r,
        }
        for r in records
    ])
    frame = frame.sort_values("created", kind="stable")
    cells = ["group", "features_key", "column"]
    counts = frame.groupby(cells, sort=False)["run_key"].transform("size")
    frame = frame.assign(n_records=counts).drop_duplicates(cells, keep="last")
    superseded = {key: int(n) - 1 for key, n in zip(frame["run_key"], frame["n_records"]) if n > 1}
    group_order = {g: i for i, g in enumerate(dict.fromkeys(frame["group"]))}
    row_best = frame.groupby(["group", "features_key"])["test_accuracy"].transform("max")
    frame = frame.assign(group_order=frame["group"].map(group_order), row_best=row_best).sort_values(
        ["group_order", "row_best", "features_key", "column_order"], ascending=[True, False, True, True], kind="stable")
    return _Selection(frame.reset_index(drop=True), superseded)


def comparison_frame(selection: _Selection) -> pd.DataFrame:
    """The tidy comparison: one row per backbone x classifier, every number (``comparison.csv``)."""
    rows = []
    for _, group in selection.frame.groupby("group", sort=False):
        labels = _row_labels(group)
        for record in group["record"]:
            f = record.features
            rows.append({
                "dataset": f.dataset,
                "n_train": f.n_train,
                "n_test": f.n_test,
                "backbone": labels[f.key],
                "weights": weights_text(f.attrs),
                "random_weights": weights_kind(f.attrs) == "random",
                "classifier": classifier_label(record.clf, record.scale, record.pca),
                "test_accuracy": record.test_accuracy,
                "cv_mean": record.cv_best_score,
                "cv_std": record.cv_best_std,
                "best_params": format_point(record.best_params),
                "top5_accuracy": record.top5_accuracy,
                "macro_f1": record.macro_f1,
                "feature_dim": f.feature_dim,
                "input_size": _size(f.attrs),
                "features_key": f.key,
                "run_key": record.run_key,
                "record_file": record.record_file,
                "created": record.created,
            })
    return pd.DataFrame(rows)


def _row_labels(group: pd.DataFrame) -> dict[str, str]:
    """Row label per features key: the backbone, made unique within the table by what differs."""
    sources = {r.features.key: r.features for r in group["record"]}
    by_name: dict[str, list[str]] = {}
    for key, source in sources.items():
        by_name.setdefault(source.backbone, []).append(key)
    labels = {}
    for name, keys in by_name.items():
        if len(keys) == 1:
            labels[keys[0]] = name
            continue
        describe = {
            "weights": lambda a: weights_text(a).split(" (")[0].lower(),
            "size": lambda a: _size(a),
            "precision": lambda a: str(a.get("precision", "")),
            "crop": lambda a: f"crop {a.get('crop_pct')}",
        }
        differing = [fn for fn in describe.values() if len({fn(sources[k].attrs) for k in keys}) > 1]
        for key in keys:
            parts = [fn(sources[key].attrs) for fn in differing] or [f"features {key[:8]}"]
            labels[key] = f"{name} ({', '.join(parts)})"
        if len({labels[k] for k in keys}) < len(keys):
            for key in keys:
                labels[key] += f" [{key[:8]}]"
    return labels


def _table_view(group: pd.DataFrame, selection: _Selection, root: Path, *, pca: bool) -> TableView:
    records: list[RunRecord] = list(group["record"])
    first = records[0].features
    labels = _row_labels(group)
    columns = tuple(dict.fromkeys(group.sort_values("column_order", kind="stable")["column"]))
    row_keys = list(dict.fromkeys(group["features_key"]))
    table = group.pivot(index="features_key", columns="column", values="record").reindex(index=row_keys, columns=list(columns))
    best_value = float(group["test_accuracy"].max())
    rows = []
    for key, line in table.iterrows():
        source = next(r.features for r in records if r.features.key == key)
        cells = []
        for record in line:
            cells.append(None if not isinstance(record, RunRecord) else Cell(
                test=record.test_accuracy,
                cv_mean=record.cv_best_score,
                cv_std=record.cv_best_std,
                params=format_point(record.best_params, short=True),
                anchor=_anchor("run", record.run_key),
                best=record.test_accuracy == best_value,
                flags=tuple(_run_flags(record)),
            ))
        rows.append(Row(labels[key], _anchor("features", key), weights_text(source.attrs), weights_kind(source.attrs) == "random", tuple(cells)))
    winners = [f"{labels[r.features.key]} + {classifier_label(r.clf, r.scale, r.pca)}" for r in records if r.test_accuracy == best_value]
    best = f"Best: {' and '.join(winners)}, {_pct(best_value)} test accuracy."
    features = []
    for key in row_keys:
        runs = [r for r in records if r.features.key == key]
        features.append(_feature_view(runs, labels[key], selection, root, pca=pca))
    n_classes = len(records[0].class_names)
    limit = first.attrs.get("limit")
    subtitle = f"{first.n_train:,} train / {first.n_test:,} test images, {n_classes} classes"
    if limit not in (None, ""):
        subtitle += f", subset of at most {limit} images per split (--limit)"
    location = first.attrs.get("dataset_location")
    if location:
        subtitle += f"; read from {location}"
    return TableView(
        anchor=_anchor("dataset", first.dataset, first.key),
        title=first.dataset,
        subtitle=subtitle,
        columns=columns,
        rows=tuple(rows),
        best=best,
        extraction=_extraction_frame(records, labels),
        features=tuple(features),
        n_random=sum(row.random for row in rows),
    )


def _run_flags(record: RunRecord) -> list[str]:
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


def _extraction_frame(records: Sequence[RunRecord], labels: Mapping[str, str]) -> pd.DataFrame:
    """Extraction facts, one row per feature file of a table (the cache key is in the backbone's section)."""
    rows = []
    for key, f in {r.features.key: r.features for r in records}.items():
        a, train = f.attrs, f.splits.get("train", {})
        seconds = sum(float(s.get("seconds") or 0) for s in f.splits.values())
        rate = train.get("images_per_second")
        rows.append({
            "backbone": labels[key],
            "weights": weights_text(a),
            "input": _input_text(a),
            "precision": str(a.get("precision", "-")),
            "dims": f"{f.feature_dim:,}",
            "images/s (train)": f"{float(rate):,.0f}" if rate else "-",
            "device": str(train.get("device") or "-"),
            "extraction time": f"{seconds:,.1f} s" if seconds else "-",
        })
    return pd.DataFrame(rows)


def _input_text(attrs: Mapping[str, Any]) -> str:
    parts = [_size(attrs)]
    if attrs.get("interpolation"):
        parts.append(str(attrs["interpolation"]))
    if attrs.get("crop_pct") not in (None, ""):
        parts.append(f"crop {attrs['crop_pct']:g}" if isinstance(attrs["crop_pct"], (int, float)) else f"crop {attrs['crop_pct']}")
    return ", ".join(parts)


def _feature_view(runs: Sequence[RunRecord], label: str, selection: _Selection, root: Path, *, pca: bool) -> FeatureView:
    f = runs[0].features
    a = f.attrs
    random = weights_kind(a) == "random"
    facts = [
        ("backbone", f"{f.backbone} (timm {a.get('architecture', f.backbone)}{', tag ' + str(a['pretrained_tag']) if a.get('pretrained_tag') and not random else ''})"),
        ("weights", weights_text(a)),
        ("input", _input_text(a)),
        ("mean / std", f"{_triple(a.get('mean'))} / {_triple(a.get('std'))}"),
        ("precision", str(a.get("precision", "-"))),
        ("features", f"{f.feature_dim:,}-d, {f.n_train:,} train + {f.n_test:,} test rows"),
    ]
    for name, split in f.splits.items():
        rate = split.get("images_per_second")
        facts.append((f"{name} split", f"{float(split.get('seconds') or 0):,.1f} s, {float(rate or 0):,.0f} images/s on {split.get('device') or '-'}"))
    facts += [
        ("versions", f"timm {a.get('timm_version', '?')}, torch {a.get('torch_version', '?')}, featx {a.get('featx_version', '?')}"),
        ("created", str(a.get("created", "-"))),
        ("cache file", f"{f.path} (key {f.key})"),
    ]
    scales = list(dict.fromkeys(r.scale for r in runs))
    return FeatureView(
        anchor=_anchor("features", f.key),
        label=label,
        weights=weights_text(a),
        random=random,
        facts=tuple(facts),
        pca=tuple(_pca_view(f.path, f.backbone, f.key, scale, root, draw=pca) for scale in scales),
        runs=tuple(_run_view(r, label, selection) for r in runs),
        command=extract_command(a, f.backbone),
    )


def _triple(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(f"{float(v):.3g}" for v in value)
    return str(value if value is not None else "-")


def _pca_view(features_path: str, backbone: str, key: str, scale: str, root: Path, *, draw: bool) -> PcaView:
    from featx.fitting.projection import PCA_DIR, existing_pca, pca, pca_stem

    found = existing_pca(root / PCA_DIR / f"{pca_stem(backbone, key, scale)}.json", key=key)
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


def _run_view(record: RunRecord, label: str, selection: _Selection) -> RunView:
    column = classifier_label(record.clf, record.scale, record.pca)
    points = [p.params for p in record.cv_results]
    curve = plots.grid_curve_png(
        points, [p.mean for p in record.cv_results], [p.std for p in record.cv_results],
        grid=record.grid, best=record.best_params, title=f"{column} on {label}: {record.cv}-fold CV",
    )
    confusion = plots.confusion_png(record.confusion_matrix, record.class_names,
                                    title=f"{column} on {label}: test accuracy {_pct(record.test_accuracy)}")
    per_class = pd.DataFrame({
        "class": [c.name for c in record.per_class],
        "precision": [f"{c.precision:.3f}" for c in record.per_class],
        "recall": [f"{c.recall:.3f}" for c in record.per_class],
        "F1": [f"{c.f1:.3f}" for c in record.per_class],
        "support": [f"{c.support:,}" for c in record.per_class],
    })
    facts = [
        ("test accuracy", _pct(record.test_accuracy)
         + (f"; top-5 {_pct(record.top5_accuracy)}" if record.top5_accuracy is not None else "")
         + f"; macro F1 {record.macro_f1:.4f}"),
        ("best point", f"{format_point(record.best_params, short=True)}: CV accuracy {_pct(record.cv_best_score)} ± {_pp(record.cv_best_std)}"),
        ("grid", "; ".join(f"{name}: {format_spec(values)}" for name, values in record.grid.items())),
        ("protocol", f"{record.cv}-fold stratified CV on the {record.features.n_train:,} train images (seed {record.seed}), "
                     f"best point refit on all of them, scored once on the {record.features.n_test:,} test images"),
        ("pipeline", " → ".join(record.pipeline)),
        ("timings", f"search {record.search_seconds:,.1f} s, refit {record.fit_seconds:,.1f} s, predict {record.predict_seconds:,.2f} s"),
        ("record", f"{record.record_file} ({record.created}, featx {record.featx_version})"),
    ]
    notes = list(_run_flags(record)) + [f"solver warning: {w}" for w in record.warnings[1:4]]
    older = selection.superseded.get(record.run_key, 0)
    if older:
        notes.append(f"{older} older record(s) of this backbone and classifier exist (other grid or protocol); the newest is shown")
    return RunView(
        anchor=_anchor("run", record.run_key),
        title=f"{label} × {column}",
        random=weights_kind(record.features.attrs) == "random",
        grid_curve=Figure(figures.data_uri(curve), f"CV accuracy over the grid of {column} on {label}"),
        confusion=Figure(figures.data_uri(confusion), f"confusion matrix of {column} on {label}"),
        per_class=per_class,
        facts=tuple(facts),
        notes=tuple(notes),
        command=fit_command(record),
    )


# --------------------------------------------------------------------------- provenance


def extract_command(attrs: Mapping[str, Any], backbone: str) -> str:
    """The ``featx extract`` command that makes these features again (from the file's attributes)."""
    parts = ["featx", "extract", "--backbone", backbone, "--dataset", str(attrs.get("dataset_spec") or attrs.get("dataset") or "?")]
    kind = weights_kind(attrs)
    if kind == "file":
        parts += ["--weights", str(attrs.get("weights_path") or "PATH")]
    elif kind == "random":
        parts += ["--weights", "random"]
    size = attrs.get("input_size")
    if isinstance(size, (list, tuple)) and len(size) == 3:
        parts += ["--image-size", str(size[1])]
    for option, name in (("--crop-pct", "crop_pct"), ("--crop-mode", "crop_mode"), ("--interpolation", "interpolation")):
        if attrs.get(name) not in (None, ""):
            parts += [option, format_value(attrs[name])]
    for option, name in (("--mean", "mean"), ("--std", "std")):
        if isinstance(attrs.get(name), (list, tuple)):
            parts += [option, ",".join(format_value(float(v)) for v in attrs[name])]
    if attrs.get("precision"):
        parts += ["--precision", str(attrs["precision"])]
    if attrs.get("limit") not in (None, ""):
        parts += ["--limit", str(attrs["limit"])]
    identity = attrs.get("dataset_identity") if isinstance(attrs.get("dataset_identity"), Mapping) else {}
    if identity.get("test_fraction") not in (None, 0.2):
        parts += ["--test-fraction", format_value(identity["test_fraction"])]
    if attrs.get("seed") not in (None, "", 0):
        parts += ["--seed", str(attrs["seed"])]
    return shlex.join(parts)


def fit_command(record: RunRecord) -> str:
    """The ``featx fit`` command that makes this run again (same run key)."""
    parts = ["featx", "fit", "--features", record.features.path, "--clf", record.clf]
    spec = CLASSIFIERS.get(record.clf)
    options = {p.name: p.option for p in spec.grid} if spec else {}
    for name, values in record.grid.items():
        option = options.get(name, "--grid")
        text = format_spec(values)
        parts += [option, text] if option != "--grid" else ["--grid", f"{name}={text}"]
    parts += ["--cv", str(record.cv), "--scale", record.scale, "--seed", str(record.seed)]
    if record.pca:
        parts += ["--pca", str(record.pca)]
    return shlex.join(parts)


def _provenance(records: Sequence[RunRecord], *, command: str, generated: str) -> dict[str, Any]:
    def versions(values: Iterable[Any]) -> str:
        found = sorted({str(v) for v in values if v not in (None, "")})
        return ", ".join(found) if found else "-"

    created = sorted(r.created for r in records)
    extracted = sorted(str(r.features.attrs.get("created")) for r in records if r.features.attrs.get("created"))
    return {
        "command": command,
        "versions": [
            ("featx (this page)", __version__),
            ("featx (runs)", versions(r.featx_version for r in records)),
            ("timm", versions(r.features.attrs.get("timm_version") for r in records)),
            ("torch", versions(r.features.attrs.get("torch_version") for r in records)),
            ("scikit-learn", versions(r.environment.get("scikit_learn") for r in records)),
            ("numpy", versions(r.environment.get("numpy") for r in records)),
            ("python", versions(r.environment.get("python") for r in records)),
            ("platform", versions(r.environment.get("platform") for r in records) + f" (this page: {platform.platform(terse=True)})"),
        ],
        "dates": [
            ("features extracted", f"{extracted[0]} … {extracted[-1]}" if extracted else "-"),
            ("classifiers fitted", f"{created[0]} … {created[-1]}"),
            ("page generated", generated),
        ],
        "extract_commands": list(dict.fromkeys(extract_command(r.features.attrs, r.features.backbone) for r in records)),
        "fit_commands": [fit_command(r) for r in records],
    }


def read_manifests(root: Path) -> list[Manifest]:
    """The ``featx run`` manifests under ``<reports>/pipelines/``, newest first (unreadable ones skipped)."""
    found = []
    for path in sorted((root / MANIFEST_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tasks = data.get("tasks", [])
            statuses = pd.Series([t.get("status") for t in tasks], dtype=object).value_counts()
            counts = ", ".join(f"{n} {status}" for status, n in statuses.items())
            found.append(Manifest(str(data["name"]), str(data["command"]), str(data.get("finished", "")),
                                  str(data.get("description") or ""), f"{len(tasks)} tasks: {counts}" if tasks else ""))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("skipping pipeline manifest %s: %s", path, error)
    return sorted(found, key=lambda m: m.finished, reverse=True)


# --------------------------------------------------------------------------- Markdown


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of a frame of strings (``|`` in cells escaped), index dropped."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def comparison_markdown(tables: Sequence[TableView], *, generated: str) -> str:
    """The comparison tables as Markdown: test accuracy (best in bold), CV mean ± std, best params."""
    parts = [f"# featx comparison\n\nTest accuracy, then CV accuracy (mean ± std over the folds) and the chosen parameters. "
             f"Generated {generated} by featx {__version__}.\n"]
    for table in tables:
        data = {"backbone": [row.label + (" ⚠ RANDOM WEIGHTS" if row.random else "") for row in table.rows]}
        for index, column in enumerate(table.columns):
            values = []
            for row in table.rows:
                c = row.cells[index]
                if c is None:
                    values.append("-")
                    continue
                test = f"**{_pct(c.test)}**" if c.best else _pct(c.test)
                values.append(f"{test} (CV {_pp(c.cv_mean)} ± {_pp(c.cv_std)}; {c.params})")
            data[column] = values
        parts.append(f"## {table.title}\n\n{table.subtitle}\n\n{markdown_table(pd.DataFrame(data))}\n\n{table.best}\n")
        if table.n_random:
            parts.append("⚠ Rows marked RANDOM WEIGHTS used randomly initialised backbones, not pretrained ones: "
                         "their numbers show the pipeline working, not what pretrained features can do.\n")
    return "\n".join(parts)

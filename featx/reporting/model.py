"""The report's data model: which runs are shown, in which table, row and column.

Rows are feature files (a backbone with its weights and preprocessing), tables are test
sets (the data set's identity: content, ``--limit``, split seed), columns are classifiers
with their scaling and PCA. When several records fall into one cell (the same fit asked
again with another grid), the newest is shown and the others are counted. Everything here
is pandas frames and plain values; nothing is drawn or written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from featx.fitting.classifiers import CLASSIFIERS, Scale, classifier_label
from featx.fitting.curves import FULL, CurveRecord
from featx.fitting.grids import format_point
from featx.fitting.records import RunRecord
from featx.fitting.statistics import Comparison, tied_with_best

log = logging.getLogger(__name__)

CLASSIC_SCALE = Scale.STANDARD.value


def weights_kind(attrs: Mapping[str, Any]) -> str:
    """``pretrained``, ``file``, ``random``, ``none`` (raw pixels) or ``unknown``, from a feature file's attributes."""
    mode = str(attrs.get("weights_mode") or "")
    if mode in ("pretrained", "file", "random", "none"):
        return mode
    weights = str(attrs.get("weights") or "")
    for kind in ("pretrained", "file", "random"):
        if weights.startswith(kind):
            return kind
    return "unknown"


def weights_text(attrs: Mapping[str, Any]) -> str:
    """How the weights read in the report: ``pretrained (timm/resnet50.a1_in1k)``, ``RANDOM (seed 0)``..."""
    kind, weights = weights_kind(attrs), str(attrs.get("weights") or "")
    if kind == "pretrained" and weights.startswith("pretrained:package:"):
        package, _, sha = weights.removeprefix("pretrained:package:").partition(":sha256:")
        return f"pretrained (package {package.replace('==', ' ')}, sha256 {sha[:12]})"
    if kind == "pretrained":
        return f"pretrained ({weights.partition(':')[2] or weights})"
    if kind == "none":
        return "none (raw pixels)"
    if kind == "file":
        sha = weights.rpartition(":")[2]
        where = str(attrs.get("weights_path") or "")
        return f"checkpoint {Path(where).name + ' ' if where else ''}(sha256 {sha[:12]})"
    if kind == "random":
        seed = weights.partition("seed=")[2]
        return f"RANDOM{f' (seed {seed})' if seed else ''}"
    return "unknown"


@dataclass
class Selection:
    """The runs shown: one record per (test set, feature file, classifier column)."""

    frame: pd.DataFrame  # one row per record shown, in page order
    superseded: dict[str, int] = field(default_factory=dict)  # run key shown -> older records of its cell


def test_set_key(record: RunRecord) -> str:
    """What makes two runs comparable: the same data set identity (content, limit, split).

    Files without the identity attribute (written by other tools) fall back to the data
    set name and split sizes.
    """
    identity = record.features.attrs.get("dataset_identity")
    if isinstance(identity, Mapping) and identity:
        return record.features.dataset + "|" + json.dumps(identity, sort_keys=True)
    return f"{record.features.dataset}|{record.features.n_train}/{record.features.n_test}"


def select_runs(records: Iterable[RunRecord]) -> Selection:
    """One record per cell (the newest), in page order.

    Tables (test sets) are in the order of their first record; rows by their best test
    accuracy, best first; columns in the classifier registry's order.
    """
    order = {name: i for i, name in enumerate(CLASSIFIERS)}
    frame = pd.DataFrame(
        [
            {
                "group": test_set_key(r),
                "features_id": r.features.identity,
                "column": classifier_label(r.clf, r.scale, r.pca),
                "column_order": (order.get(r.clf, len(order)), r.scale != CLASSIC_SCALE, r.pca or 0),
                "created": r.created,
                "test_accuracy": r.test_accuracy,
                "run_key": r.run_key,
                "record": r,
            }
            for r in records
        ]
    )
    frame = frame.sort_values("created", kind="stable")
    cells = ["group", "features_id", "column"]
    counts = frame.groupby(cells, sort=False)["run_key"].transform("size")
    frame = frame.assign(n_records=counts).drop_duplicates(cells, keep="last")
    superseded = {key: int(n) - 1 for key, n in zip(frame["run_key"], frame["n_records"]) if n > 1}
    group_order = {g: i for i, g in enumerate(dict.fromkeys(frame["group"]))}
    row_best = frame.groupby(["group", "features_id"])["test_accuracy"].transform("max")
    frame = frame.assign(group_order=frame["group"].map(group_order), row_best=row_best).sort_values(
        ["group_order", "row_best", "features_id", "column_order"], ascending=[True, False, True, True], kind="stable"
    )
    return Selection(frame.reset_index(drop=True), superseded)


def compare_with_best(records: Iterable[RunRecord]) -> dict[str, Comparison]:
    """Every cell of one table (one test set) against its best cell, paired on the test images:
    run key -> :class:`~featx.fitting.statistics.Comparison` (exact McNemar, Holm-corrected)."""
    shown = list(records)
    return tied_with_best({r.run_key: r.test_errors() for r in shown}, {r.run_key: r.test_accuracy for r in shown})


def comparison_frame(selection: Selection) -> pd.DataFrame:
    """The tidy comparison: one row per backbone x classifier, every number (``comparison.csv``)."""
    rows = []
    for _, group in selection.frame.groupby("group", sort=False):
        labels = row_labels(group)
        contrasts = contrast_keys({r.features.key: r.features for r in group["record"]})
        versus = compare_with_best(group["record"])
        for record in group["record"]:
            f = record.features
            ci = record.test_accuracy_ci95 or [None, None]
            against = versus[record.run_key]
            rows.append(
                {
                    "dataset": f.dataset,
                    "n_train": f.n_train,
                    "n_test": f.n_test,
                    "backbone": labels[f.identity],
                    "weights": weights_text(f.attrs),
                    "random_weights": weights_kind(f.attrs) == "random",
                    "contrast": f.key in contrasts,
                    "classifier": classifier_label(record.clf, record.scale, record.pca),
                    "test_accuracy": record.test_accuracy,
                    "test_accuracy_ci_low": ci[0],
                    "test_accuracy_ci_high": ci[1],
                    "p_value_vs_best": against.p_value,
                    "p_value_vs_best_holm": against.p_adjusted,
                    "tied_with_best": None if against.tied is None else str(against.tied).lower(),
                    "balanced_accuracy": record.balanced_accuracy,
                    "log_loss": record.log_loss,
                    "cv_folds": record.cv,
                    "search": record.search,
                    "cv_mean": record.cv_best_score,
                    "cv_std": record.cv_best_std,
                    "best_params": format_point(record.best_params),
                    "top5_accuracy": record.top5_accuracy,
                    "macro_f1": record.macro_f1,
                    "feature_dim": f.feature_dim,
                    "input_size": size_text(f.attrs),
                    "features_key": f.key,
                    "run_key": record.run_key,
                    "record_file": record.record_file,
                    "created": record.created,
                }
            )
    return pd.DataFrame(rows)


def curve_test_set(record: CurveRecord) -> str:
    """The test set of a curve, keyed as :func:`test_set_key` keys runs."""
    f = record.features
    identity = f.get("attrs", {}).get("dataset_identity")
    if isinstance(identity, Mapping) and identity:
        return str(f["dataset"]) + "|" + json.dumps(identity, sort_keys=True)
    return f"{f['dataset']}|{f['n_train']}/{f['n_test']}"


def curves_frame(curves: Sequence[CurveRecord]) -> pd.DataFrame:
    """Every point of every data-efficiency curve, one row each (``curves.csv``); the newest
    curve of each features x classifier x scaling is kept."""
    newest = {}
    for record in sorted(curves, key=lambda r: r.created):
        newest[(curve_test_set(record), record.features["key"], record.features.get("content"), record.clf, record.scale)] = record
    rows = []
    for record in newest.values():
        f = record.features
        for point in record.points:
            rows.append(
                {
                    "dataset": f["dataset"],
                    "backbone": f["backbone"],
                    "classifier": classifier_label(record.clf, record.scale, None),
                    "shots": point.shots,
                    "images_per_class": round(f["n_train"] / max(1, f["n_classes"]), 1) if point.shots == FULL else point.shots,
                    "mean": point.mean,
                    "std": point.std,
                    "n_repeats": point.n_repeats,
                    "selection": point.selection,
                    "seed": record.seed,
                    "features_key": f["key"],
                    "test_set": curve_test_set(record),
                    "curve_key": record.curve_key,
                    "record_file": record.record_file,
                }
            )
    return pd.DataFrame(rows)


def row_labels(group: pd.DataFrame) -> dict[str, str]:
    """Row label per features (their identity: what they are): the backbone, made unique
    within the table by what differs."""
    sources = {r.features.identity: r.features for r in group["record"]}
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
            "size": lambda a: size_text(a),
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


def extraction_frame(records: Sequence[RunRecord], labels: Mapping[str, str]) -> pd.DataFrame:
    """Extraction facts, one row per feature file of a table (the cache key is in the backbone's section)."""
    rows = []
    for key, f in {r.features.identity: r.features for r in records}.items():
        a, train = f.attrs, f.splits.get("train", {})
        seconds = sum(float(s.get("seconds") or 0) for s in f.splits.values())
        rate = train.get("images_per_second")
        rows.append(
            {
                "backbone": labels[key],
                "weights": weights_text(a),
                "input": input_text(a),
                "precision": str(a.get("precision", "-")),
                "dims": f"{f.feature_dim:,}",
                "images/s (train)": f"{float(rate):,.0f}" if rate else "-",
                "device": str(train.get("device") or "-"),
                "extraction time": f"{seconds:,.1f} s" if seconds else "-",
            }
        )
    return pd.DataFrame(rows)


def contrast_keys(sources: Mapping[str, Any]) -> set[str]:
    """The random-weights rows of a table that are contrasts: the same architecture also has a
    row with pretrained weights (or a checkpoint) there, so the pair shows what the weights add.

    Args:
        sources: features key -> the run record's features (with ``attrs``).
    """
    trained = {str(f.attrs.get("architecture") or f.backbone) for f in sources.values() if weights_kind(f.attrs) in ("pretrained", "file")}
    return {
        key for key, f in sources.items() if weights_kind(f.attrs) == "random" and str(f.attrs.get("architecture") or f.backbone) in trained
    }


def size_text(attrs: Mapping[str, Any]) -> str:
    size = attrs.get("input_size")
    if isinstance(size, (list, tuple)) and len(size) == 3:
        return f"{size[1]}×{size[2]}"
    return "-"


def input_text(attrs: Mapping[str, Any]) -> str:
    parts = [size_text(attrs)]
    if attrs.get("interpolation"):
        parts.append(str(attrs["interpolation"]))
    if attrs.get("crop_pct") not in (None, ""):
        parts.append(f"crop {attrs['crop_pct']:g}" if isinstance(attrs["crop_pct"], (int, float)) else f"crop {attrs['crop_pct']}")
    return ", ".join(parts)


def triple_text(value: Any) -> str:
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ", ".join(f"{float(v):.3g}" for v in value)
    return str(value if value is not None else "-")

"""How the page was made: the commands that reproduce every number, versions, dates, and
the manifests of the ``featx run`` pipelines behind it (``reports/pipelines/*.json``).
"""

from __future__ import annotations

import json
import logging
import platform
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from featx._version import __version__
from featx.fitting.classifiers import CLASSIFIERS
from featx.fitting.grids import format_spec, format_value
from featx.fitting.records import RunRecord
from featx.reporting.model import weights_kind

log = logging.getLogger(__name__)

MANIFEST_DIR = "pipelines"


@dataclass(frozen=True)
class Manifest:
    """A ``featx run`` of a pipeline, as its manifest under ``reports/pipelines/`` says."""

    name: str
    command: str
    finished: str
    description: str
    counts: str


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
    identity: Mapping[str, Any] = attrs["dataset_identity"] if isinstance(attrs.get("dataset_identity"), Mapping) else {}
    if identity.get("test_fraction") not in (None, 0.2):
        parts += ["--test-fraction", format_value(identity["test_fraction"])]
    if attrs.get("seed") not in (None, "", 0):
        parts += ["--seed", str(attrs["seed"])]
    return shlex.join(parts)


def fit_command(record: RunRecord) -> str:
    """The ``featx fit`` command that makes this run again (same run key)."""
    parts = ["featx", "fit", "--features", record.features.path, "--clf", record.clf]
    spec = CLASSIFIERS.get(record.clf)
    # records name a parameter as users do (k-NN's `vote`); older ones by the estimator's name
    options = {name: p.option for p in spec.grid for name in (p.name, p.public_name)} if spec else {}
    for name, values in record.grid.items():
        option = options.get(name, "--grid")
        text = format_spec(values)
        parts += [option, text] if option != "--grid" else ["--grid", f"{name}={text}"]
    parts += ["--cv", str(record.cv), "--scale", record.scale, "--seed", str(record.seed)]
    if record.pca:
        parts += ["--pca", str(record.pca)]
    parts += ["--solver", record.solver]  # as resolved: auto may choose otherwise on another machine
    return shlex.join(parts)


def provenance(records: Sequence[RunRecord], *, command: str, generated: str) -> dict[str, Any]:
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
            found.append(
                Manifest(
                    str(data["name"]),
                    str(data["command"]),
                    str(data.get("finished", "")),
                    str(data.get("description") or ""),
                    f"{len(tasks)} tasks: {counts}" if tasks else "",
                )
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("skipping pipeline manifest %s: %s", path, error)
    return sorted(found, key=lambda m: m.finished, reverse=True)

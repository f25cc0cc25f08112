"""``featx export``: a fitted run as one TorchScript file that plain torch loads, and a
JSON sidecar saying what it is.

The ``.pt`` file (:func:`featx.extraction.scripted.compile_classifier`) holds the
preprocessing from uint8 images, the frozen backbone and the head: scaling, PCA and a
linear classifier folded into one linear layer (:func:`featx.fitting.folding.fold_pipeline`),
or k-NN with its training rows. It loads with ``torch.jit.load`` where neither featx
nor timm is installed. The sidecar (``model.json`` beside ``model.pt``) holds the class
names, the input contract, the data config, the run it came from and the ``.pt`` file's
sha256.

Files: an existing ``--out`` is written over only when it is an export featx wrote (its
sidecar is featx's and names its sha256); anything else there is left alone.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featx._version import __version__
from featx.core.atomic import atomic_path, atomic_write_text
from featx.core.errors import ConfigError
from featx.core.hashing import file_sha256
from featx.core.heads import LinearHead
from featx.core.ownership import FileKind, ensure_replaceable
from featx.deploy.runs import resolve_run
from featx.fitting.folding import fold_pipeline
from featx.fitting.records import load_model

log = logging.getLogger(__name__)

#: marks the sidecar of an export written by featx
EXPORT_FORMAT = "featx-export"
EXPORT_FORMAT_VERSION = 1
MODEL_SUFFIXES = (".pt", ".pth", ".ts")


@dataclass(frozen=True)
class ExportFiles:
    """What :func:`export_model` wrote.

    Attributes:
        model: the TorchScript file.
        sidecar: the JSON beside it.
        head: "linear" or "knn".
        score: "probability" or "decision".
        class_names: the run's class names (the columns of the scores).
        size_bytes: the model file's size.
    """

    model: Path
    sidecar: Path
    head: str
    score: str
    class_names: tuple[str, ...]
    size_bytes: int


def sidecar_path(out: str | os.PathLike[str]) -> Path:
    """``model.pt`` -> ``model.json``."""
    return Path(out).with_suffix(".json")


def export_model(
    run: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    reports_dir: str | os.PathLike[str] | None = None,
    dataset: str | None = None,
    weights: str | os.PathLike[str] | None = None,
) -> ExportFiles:
    """Write a fitted run as one TorchScript file (uint8 images -> class scores) and its JSON sidecar.

    Example::

        files = featx.export_model("best", "pets.pt", dataset="pets")
        model = torch.jit.load("pets.pt")                    # no featx, no timm needed
        scores = model(torch.from_numpy(uint8_images))      # (n, h, w, 3) -> (n, n_classes)

    Args:
        run: a run record file, a run key, or ``best`` (see :func:`featx.deploy.resolve_run`).
        out: the ``.pt`` file; the sidecar goes beside it (``.json``).
        reports_dir: reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
        dataset: with ``best``: the data set.
        weights: the backbone's checkpoint, when it moved (same sha256 required).

    Returns:
        The :class:`ExportFiles`.

    Raises:
        ConfigError: ``out`` does not end in .pt, .pth or .ts.
        ForeignFileError: a file featx did not write is at ``out`` or its sidecar's place.
        WriteError: the folder cannot be written.
        PredictError: the run cannot be exported (a step or estimator featx does not
            fold), or the weights are not those of its features.
        ReportError, WeightsError: as :func:`featx.load_predictor`.
    """
    from featx.extraction.inference import load_extractor
    from featx.extraction.scripted import compile_classifier, save_scripted

    target = Path(out).expanduser()
    if target.suffix.lower() not in MODEL_SUFFIXES:
        raise ConfigError(f"the export is a TorchScript file: name it .pt (got {target.name})", field="out")
    sidecar = sidecar_path(target)
    _check_replaceable(target, sidecar)
    found = resolve_run(run, reports_dir=reports_dir, dataset=dataset)
    log.info("run: %s", found.how)
    record = found.record
    model = load_model(found.path)
    head = fold_pipeline(model, len(record.class_names))
    extractor = load_extractor(record.features.attrs, features_path=record.features.path, weights=weights, device="cpu")
    module = compile_classifier(extractor.model, extractor.data_config, head, list(record.class_names))
    with atomic_path(target, kind=EXPORT_KIND) as tmp:
        save_scripted(module, str(tmp))
    sha256 = file_sha256(target)
    kind = "linear" if isinstance(head, LinearHead) else "knn"
    data = extractor.data_config
    meta: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "featx_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_file": target.name,
        "model_sha256": sha256,
        "load": "torch.jit.load(model_file); model(uint8 images (n, height, width, 3 or 1)) -> (n, n_classes) scores",
        "class_names": list(record.class_names),
        "score": head.score,
        "head": kind,
        "input": {"dtype": "uint8", "layout": "NHWC", "channels": [1, 3], "any_size": True},
        "input_size": list(data.input_size),
        "data_config": data.as_dict(),
        "computes_in": "float32",
        "run": {
            "run_key": record.run_key,
            "record_file": record.record_file,
            "found_as": found.how,
            "clf": record.clf,
            "best_params": record.best_params,
            "scale": record.scale,
            "pca": record.pca,
            "test_accuracy": record.test_accuracy,
            "dataset": record.features.dataset,
            "backbone": record.features.backbone,
            "weights": record.features.weights,
            "features_key": record.features.key,
            "precision": record.features.attrs.get("precision"),
        },
    }
    atomic_write_text(sidecar, json.dumps(meta, indent=2) + "\n", kind=SIDECAR_KIND)
    log.info("exported %s (%s head, %s) to %s", record.run_key, kind, head.score, target)
    return ExportFiles(
        model=target, sidecar=sidecar, head=kind, score=head.score, class_names=tuple(record.class_names), size_bytes=target.stat().st_size
    )


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar's content when ``path`` is one featx wrote, else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == EXPORT_FORMAT else None


def _exported_by_featx(model: Path) -> bool:
    """Whether ``model`` is an export featx wrote: its sidecar is featx's and names its sha256."""
    meta = read_sidecar(sidecar_path(model))
    return meta is not None and meta.get("model_sha256") == file_sha256(model)


EXPORT_KIND = FileKind("TorchScript export", _exported_by_featx)
SIDECAR_KIND = FileKind("export sidecar", lambda path: read_sidecar(path) is not None)


def _check_replaceable(model: Path, sidecar: Path) -> None:
    """Refuse to write over anything but an export featx wrote (checked before any work)."""
    ensure_replaceable(sidecar, SIDECAR_KIND)
    ensure_replaceable(model, EXPORT_KIND)

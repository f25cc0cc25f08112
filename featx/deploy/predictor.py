"""``featx.load_predictor``: label new images with a fitted run, as ``featx predict`` does.

A :class:`Predictor` holds the run's record, its saved Pipeline (loaded only when its
sha256 is the one the record was written with) and its backbone, rebuilt with the exact
weights identity and data config of the features the run was fitted on
(:func:`featx.extraction.inference.load_extractor`, which refuses other weights). Images go
through stage one's own code path, then the Pipeline: the label of an image that was in
the run's test split is the one behind the record's test accuracy.

Example::

    predictor = featx.load_predictor("best", dataset="pets")
    result = predictor.predict(["dog.jpg", "photos/"])      # files and folders (recursively)
    result.labels[0], result.scores[0]                      # "dog", (n_classes,) scores
    predictor.predict_proba([numpy_image, pil_image])      # (2, n_classes) probabilities
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featx._version import __version__
from featx.core.atomic import atomic_write_text
from featx.core.console import progress
from featx.core.errors import ConfigError, ImageReadError, PredictError
from featx.core.heads import PROBABILITY
from featx.core.ownership import FileKind, ensure_replaceable
from featx.deploy.runs import ResolvedRun, resolve_run
from featx.extraction.datasets.imagefolder import IMAGE_EXTENSIONS
from featx.fitting.folding import class_scores, decision_scores, score_kind
from featx.fitting.records import RunRecord, load_model

if TYPE_CHECKING:
    from featx.extraction.inference import FeatureExtractor

log = logging.getLogger(__name__)

#: marks a JSON file of predictions written by featx
PREDICTIONS_FORMAT = "featx-predictions"
#: how a CSV file of predictions begins
CSV_HEADER = "path,label,score"
DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class Prediction:
    """One image's result.

    Attributes:
        path: the file (as found), or ``<image N>`` for an image given in memory.
        label: the predicted class name.
        score: its score (probability, or decision value for LinearSVC).
        top: the ``k`` best ``(class name, score)`` pairs, best first (the predicted label first).
    """

    path: str
    label: str
    score: float
    top: tuple[tuple[str, float], ...]


@dataclass(frozen=True, eq=False)
class Predictions:
    """The results of one :meth:`Predictor.predict` call, one row per image, in order.

    Attributes:
        paths: each image's file (as found: folders expanded, sorted), or ``<image N>``.
        indices: ``(n,)`` int64 predicted class indices (the saved Pipeline's ``predict``).
        scores: ``(n, n_classes)`` float64 scores of every class.
        class_names: the run's class names (columns of ``scores``).
        score_kind: "probability" or "decision".
        skipped: ``(path, reason)`` of each unreadable image left out (``skip_bad``).
        run: how the run was found and its key.
    """

    paths: tuple[str, ...]
    indices: np.ndarray
    scores: np.ndarray
    class_names: tuple[str, ...]
    score_kind: str
    skipped: tuple[tuple[str, str], ...] = ()
    run: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Prediction]:
        return iter(self.rows())

    @property
    def labels(self) -> list[str]:
        """The predicted class name of each image."""
        return [self.class_names[i] for i in self.indices]

    def top_k(self, k: int = DEFAULT_TOP_K) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best classes of each image, best first, the predicted class first
        (then by score, ties in class order).

        Returns:
            ``(indices, scores)``, each ``(n, min(k, n_classes))``.
        """
        k = max(1, min(int(k), len(self.class_names)))
        order = np.argsort(-self.scores, axis=1, kind="stable")
        # the Pipeline's own label leads even where rounding ties it with another class
        rest = order[order != self.indices[:, None]].reshape(len(order), -1) if len(order) else order[:, 1:]
        ranked = np.concatenate([self.indices[:, None], rest], axis=1)[:, :k]
        return ranked, np.take_along_axis(self.scores, ranked, axis=1)

    def rows(self, top_k: int = DEFAULT_TOP_K) -> list[Prediction]:
        """One :class:`Prediction` per image."""
        ranked, values = self.top_k(top_k)
        return [
            Prediction(
                path=path,
                label=self.class_names[self.indices[i]],
                score=float(self.scores[i, self.indices[i]]),
                top=tuple((self.class_names[c], float(v)) for c, v in zip(ranked[i], values[i])),
            )
            for i, path in enumerate(self.paths)
        ]

    def to_csv(self, top_k: int = DEFAULT_TOP_K) -> str:
        """``path,label,score,label_1,score_1,...,label_k,score_k``, one line per image."""
        k = max(1, min(int(top_k), len(self.class_names)))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*CSV_HEADER.split(","), *(f"{name}_{i}" for i in range(1, k + 1) for name in ("label", "score"))])
        for row in self.rows(k):
            writer.writerow([row.path, row.label, _number(row.score), *(v for label, s in row.top for v in (label, _number(s)))])
        return buffer.getvalue()

    def to_dict(self, top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
        """The results as JSON types: the run, the class names, one entry per image, the skipped files."""
        return {
            "format": PREDICTIONS_FORMAT,
            "featx_version": __version__,
            "run": self.run,
            "score": self.score_kind,
            "class_names": list(self.class_names),
            "top_k": max(1, min(int(top_k), len(self.class_names))),
            "predictions": [
                {
                    "path": row.path,
                    "label": row.label,
                    "score": _json_number(row.score),
                    "top": [{"label": label, "score": _json_number(score)} for label, score in row.top],
                }
                for row in self.rows(top_k)
            ],
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
        }

    def to_json(self, top_k: int = DEFAULT_TOP_K) -> str:
        """:meth:`to_dict` as indented JSON text."""
        return json.dumps(self.to_dict(top_k), indent=2, allow_nan=False) + "\n"


def _number(value: float) -> str:
    return repr(float(value)) if np.isfinite(value) else ("-inf" if value < 0 else "inf")


def _json_number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


class Predictor:
    """A fitted run ready to label images: its backbone, data config and saved Pipeline.

    Made by :func:`load_predictor`. ``images`` below is one item or a list of them: an
    image file, a folder (its images, recursively, sorted; hidden files and files that
    are not images by their extension are left out), a PIL image, or a uint8 array
    ``(height, width[, 1|3|4])``; a 4-d uint8 array is a batch of images.

    Attributes:
        record: the run record.
        run: how the run was found.
        class_names: the run's class names.
        score_kind: "probability" (logistic regression, k-NN) or "decision" (LinearSVC).
    """

    def __init__(self, run: ResolvedRun, model: Any, extractor: FeatureExtractor) -> None:
        self.run = run
        self.record: RunRecord = run.record
        self.model = model
        self.extractor = extractor
        self.class_names: tuple[str, ...] = tuple(run.record.class_names)
        self.score_kind = score_kind(model)

    def __repr__(self) -> str:
        r = self.record
        return f"Predictor({r.clf} on {r.features.backbone} [{r.features.weights}], {len(self.class_names)} classes, run {r.run_key})"

    def predict(self, images: Any, *, skip_bad: bool = False, show_progress: bool = True) -> Predictions:
        """Label images: the saved Pipeline's label and every class's score for each.

        Args:
            images: see the class's doc.
            skip_bad: leave out image files that cannot be decoded (named in
                ``Predictions.skipped`` and the log) instead of stopping at the first.
            show_progress: a progress bar on stderr (hidden when quiet or not a terminal).

        Returns:
            :class:`Predictions`, one row per image in the order found.

        Raises:
            ImageReadError: an image file cannot be decoded (names it; without ``skip_bad``),
                a path does not exist, or a folder holds no images.
            ConfigError: an item is not an image, a path or a folder.
        """
        items = collect_images(images)
        skipped: list[tuple[str, str]] = []
        if skip_bad:
            items, skipped = _readable(items)
            for path, reason in skipped:
                log.warning("--skip-bad: skipped %s (%s)", path, reason)
        features = self._features(items, show_progress=show_progress)
        if len(items):
            indices, scores = self._classify(features)
        else:
            indices, scores = np.zeros(0, dtype=np.int64), np.zeros((0, len(self.class_names)))
        return Predictions(
            paths=tuple(name for name, _ in items),
            indices=indices,
            scores=scores,
            class_names=self.class_names,
            score_kind=self.score_kind,
            skipped=tuple(skipped),
            run=self.describe(),
        )

    def predict_proba(self, images: Any, *, skip_bad: bool = False) -> np.ndarray:
        """``(n, n_classes)`` class probabilities (logistic regression and k-NN runs).

        Raises:
            PredictError: the run's classifier gives decision values, not probabilities
                (LinearSVC): use :meth:`decision_function`.
        """
        if self.score_kind != PROBABILITY:
            raise PredictError(f"{self.record.clf} gives decision values, not probabilities: use decision_function()")
        return self.predict(images, skip_bad=skip_bad, show_progress=False).scores

    def decision_function(self, images: Any, *, skip_bad: bool = False) -> np.ndarray:
        """``(n, n_classes)`` decision values (LinearSVC, logistic regression).

        Raises:
            PredictError: the run's classifier has none (k-NN).
        """
        features = self.features(images, skip_bad=skip_bad)
        if not hasattr(self.model, "decision_function"):
            raise PredictError(f"{self.record.clf} has no decision function: use predict_proba()")
        return decision_scores(self.model, features, len(self.class_names))

    def features(self, images: Any, *, skip_bad: bool = False) -> np.ndarray:
        """The backbone's ``(n, D)`` float32 features of the images, as ``featx extract`` computes them."""
        items = collect_images(images)
        if skip_bad:
            items, _ = _readable(items)
        return self._features(items, show_progress=False)

    def describe(self) -> dict[str, Any]:
        """What the run is, for outputs: key, record, classifier, backbone, weights, test accuracy."""
        r = self.record
        return {
            "run_key": r.run_key,
            "record": str(self.run.path),
            "found_as": self.run.how,
            "clf": r.clf,
            "best_params": r.best_params,
            "test_accuracy": r.test_accuracy,
            "dataset": r.features.dataset,
            "backbone": r.features.backbone,
            "weights": r.features.weights,
            "features_key": r.features.key,
        }

    def _features(self, items: Sequence[tuple[str, Any]], *, show_progress: bool) -> np.ndarray:
        files = [i for i, (_, item) in enumerate(items) if isinstance(item, str)]
        memory = [i for i, (_, item) in enumerate(items) if not isinstance(item, str)]
        out = np.empty((len(items), self.extractor.dim), dtype=np.float32)
        with contextlib.ExitStack() as stack:
            bar = (
                stack.enter_context(progress(total=len(items), desc=f"predict {self.record.features.backbone}")) if show_progress else None
            )
            on_batch = bar.update if bar is not None else None
            if files:
                out[files] = self.extractor.files([items[i][1] for i in files], on_batch=on_batch)
            if memory:
                out[memory] = self.extractor.images([items[i][1] for i in memory], on_batch=on_batch)
        return out

    def _classify(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        predicted = np.asarray(self.model.predict(features)).astype(np.int64)
        return predicted, class_scores(self.model, features, len(self.class_names))


def load_predictor(
    run: str | os.PathLike[str],
    *,
    reports_dir: str | os.PathLike[str] | None = None,
    dataset: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
) -> Predictor:
    """A fitted run, ready to label images (``featx predict`` is this and :meth:`Predictor.predict`).

    Example::

        predictor = featx.load_predictor("reports/runs/pets/resnet50__3f2a...__logreg__9c1d....json")
        predictor.predict("new_photos/").labels

    Args:
        run: a run record file (or its ``.joblib``), a run key (or a unique prefix), or
            ``best`` (the best cell of the latest ``featx report``).
        reports_dir: reports root (default ``reports/`` or ``FEATX_REPORTS_DIR``).
        dataset: with ``best``: the data set (needed when the report has several).
        weights: the backbone's checkpoint file, when it is no longer where the features
            were made from (it must have the same sha256).
        device: "auto", "cpu", "cuda" or "cuda:<index>".
        batch_size: images per batch (default 256 on CUDA, 32 on CPU, as ``featx extract``).
        num_workers: processes decoding image files (default as ``featx extract``).

    Returns:
        The :class:`Predictor`.

    Raises:
        PredictError: no such run, or the backbone's weights are not those the run's
            features were made with (another sha256, another source).
        ReportError: the record or its model is unreadable, or the model file is not the
            one the record was written with (featx will not unpickle it).
        WeightsError: the weights cannot be had (a checkpoint that is gone, offline).
        DeviceError: CUDA asked for but not available.
    """
    from featx.extraction.inference import load_extractor

    found = resolve_run(run, reports_dir=reports_dir, dataset=dataset)
    log.info("run: %s", found.how)
    model = load_model(found.path)
    source = found.record.features
    extractor = load_extractor(
        source.attrs,
        features_path=source.path,
        weights=weights,
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
    )
    return Predictor(found, model, extractor)


# --------------------------------------------------------------------------- inputs


def collect_images(images: Any) -> list[tuple[str, Any]]:
    """``(name, item)`` per image: a file's path (folders expanded) or in-memory pixels.

    Raises:
        ImageReadError: a path that does not exist, or a folder without images.
        ConfigError: an item that is not an image nor a path.
    """
    if isinstance(images, (str, os.PathLike)) or _is_image_object(images):
        images = [images]
    elif isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    elif isinstance(images, np.ndarray):
        images = [images]
    found: list[tuple[str, Any]] = []
    n_memory = 0
    for item in images:
        if isinstance(item, (str, os.PathLike)):
            found += [(path, path) for path in _files_of(os.fspath(item))]
        elif _is_image_object(item) or isinstance(item, np.ndarray):
            found.append((f"<image {n_memory}>", item))
            n_memory += 1
        else:
            raise ConfigError(
                f"cannot label {type(item).__name__!s} {str(item)[:60]!r}: give image files, folders, PIL images or uint8 arrays"
            )
    return found


def _is_image_object(item: Any) -> bool:
    return hasattr(item, "convert") and hasattr(item, "mode") and hasattr(item, "size")


def _files_of(given: str) -> list[str]:
    """A file as given; a folder's image files, recursively, sorted (hidden ones left out)."""
    path = Path(given).expanduser()
    if path.is_dir():
        files: list[str] = []
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            files += [
                os.path.join(folder, name)
                for name in names
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
            ]
        if not files:
            raise ImageReadError(f"no images under {given} ({', '.join(sorted(IMAGE_EXTENSIONS))}, searched recursively)")
        return sorted(files)
    if not path.exists():
        raise ImageReadError(f"{given} does not exist (give image files or folders)")
    return [str(path) if given.startswith("~") else given]


def _readable(items: list[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """The items whose files decode, and ``(path, reason)`` of those that do not."""
    from featx.extraction.batches import decode_image

    def problem(item: Any) -> str | None:
        if not isinstance(item, str):
            return None
        try:
            decode_image(item)
        except ImageReadError as error:
            return str(error).split("; ")[0]  # without the advice to pass --skip-bad
        return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        problems = list(pool.map(problem, [item for _, item in items]))
    kept = [entry for entry, reason in zip(items, problems) if reason is None]
    skipped = [(name, reason) for (name, _), reason in zip(items, problems) if reason is not None]
    return kept, skipped


# --------------------------------------------------------------------------- outputs

#: the output formats of :func:`write_predictions`, by file suffix
OUTPUT_SUFFIXES = (".csv", ".json")


def write_predictions(predictions: Predictions, out: str | os.PathLike[str], *, top_k: int = DEFAULT_TOP_K) -> Path:
    """Write predictions as CSV (:meth:`Predictions.to_csv`) or JSON (:meth:`Predictions.to_json`),
    by the file's suffix, atomically.

    Raises:
        ConfigError: the suffix is neither .csv nor .json.
        WriteError: a file featx did not write as predictions is there (left as it is),
            or the folder cannot be written.
    """
    target = check_output(out)
    text = predictions.to_json(top_k) if target.suffix.lower() == ".json" else predictions.to_csv(top_k)
    return atomic_write_text(target, text, kind=PREDICTIONS_KIND)


def check_output(out: str | os.PathLike[str]) -> Path:
    """The file :func:`write_predictions` would write, checked before any work.

    Raises:
        ConfigError: the suffix is neither .csv nor .json.
        ForeignFileError: a file featx did not write as predictions is there.
    """
    target = Path(out).expanduser()
    if target.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"writes .csv or .json, got {target.name!r}", field="out")
    ensure_replaceable(target, PREDICTIONS_KIND)
    return target


def _predictions_file(path: Path) -> bool:
    """Whether ``path`` is a regular file of predictions as featx writes them."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            head = handle.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    if path.suffix.lower() == ".json":
        return f'"format": "{PREDICTIONS_FORMAT}"' in head
    return head.startswith(CSV_HEADER)


PREDICTIONS_KIND = FileKind("predictions file", _predictions_file)

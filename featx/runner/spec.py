"""Experiment specs: a whole backbone x classifier comparison, declared once in YAML.

A pipeline file (``pipelines/*.yaml``) names a data set, the backbones to extract
features with, the classifiers (with their grids) to fit on every backbone's features,
and the PCA plots to draw::

    name: cifar10-classic                 # default: the file's name
    description: the seed comparison      # optional, shown in the report
    dataset: cifar10                      # or a mapping: {name: cifar10, limit: 500, data_dir: ..., seed: 0, ...}
    extract: {crop_pct: 1.0}              # featx extract options for every backbone
    backbones:
      - vgg16                             # a timm name, or a mapping with the name and its own options
      - {name: inception_v3, image_size: 299}
    fit: {cv: 5}                          # featx fit options for every classifier
    classifiers:
      - {name: linearsvc, grid: {C: "logspace:-6:0:13"}}
      - {name: knn, grid: {n_neighbors: [1, 3, 5], weights: [uniform, distance]}}
    pca: {per_class: 200}                 # or false: no PCA plots

:func:`parse_pipeline` turns that into a frozen :class:`PipelineSpec` of the configs the
stages already have (:class:`~featx.extraction.engine.ExtractConfig` per backbone,
:class:`~featx.fitting.protocol.FitConfig` per classifier): their own checks are the checks.
Types are checked against the configs' annotations first, so a mistake is a
:class:`~featx.core.errors.ConfigError` that names its key path, e.g.
``backbones[2].image_size: expected a whole number, got 'big'``. Backbone names are
resolved in timm's registry (offline, no model is built).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from featx.core.errors import ConfigError, FeatxError
from featx.core.registry import closest_names
from featx.extraction.engine import ExtractConfig
from featx.fitting.classifiers import Scale
from featx.fitting.protocol import FitConfig

T = TypeVar("T")

TOP_LEVEL_KEYS = ("name", "description", "dataset", "extract", "backbones", "fit", "classifiers", "pca")
#: ExtractConfig fields that describe the data set: set once, under ``dataset:``, so that
#: every backbone sees the same images and the comparison is fair
DATASET_KEYS = ("data_dir", "limit", "seed", "test_fraction", "download", "skip_bad")
#: ExtractConfig fields a pipeline file does not set (the command line does)
RUNTIME_EXTRACT_KEYS = ("backbone", "dataset", "force", "cache_dir")
EXTRACT_KEYS = tuple(f.name for f in dataclasses.fields(ExtractConfig) if f.name not in (*DATASET_KEYS, *RUNTIME_EXTRACT_KEYS))
FIT_KEYS = tuple(f.name for f in dataclasses.fields(FitConfig) if f.init and f.name != "clf")
#: the ``fit:`` defaults: every FitConfig option but the grid, which belongs to one classifier
FIT_DEFAULT_KEYS = tuple(key for key in FIT_KEYS if key != "grid")


@dataclass(frozen=True)
class PcaOptions:
    """How ``featx run`` draws the PCA plots of each backbone's features (see :func:`featx.pca`).

    The scaling is that of the classifiers (one plot per scaling they use).

    Attributes:
        per_class: test points drawn per class at most.
        seed: seeds the sample of test points.
    """

    per_class: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_class < 1:
            raise ConfigError(f"per_class must be at least 1, got {self.per_class}")
        if self.seed < 0:
            raise ConfigError(f"seed must be 0 or more, got {self.seed}")


@dataclass(frozen=True)
class PipelineSpec:
    """A parsed pipeline: every backbone's extraction and every classifier's fit, checked.

    Attributes:
        name: the experiment's name (names its manifest under ``reports/pipelines/``).
        description: free text for the report.
        dataset: the data set spec every backbone reads (``cifar10``, ``imagefolder:PATH``).
        backbones: one extraction config per backbone, in file order.
        classifiers: one fit config per classifier, in file order.
        pca: PCA plot options, or None for no plots.
        source: the file it was read from, if any.
    """

    name: str
    dataset: str
    backbones: tuple[ExtractConfig, ...]
    classifiers: tuple[FitConfig, ...]
    pca: PcaOptions | None = PcaOptions()
    description: str = ""
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.backbones:
            raise ConfigError("backbones: a pipeline needs at least one backbone")
        if not self.classifiers:
            raise ConfigError("classifiers: a pipeline needs at least one classifier")
        if any(config.dataset != self.dataset for config in self.backbones):
            raise ConfigError("every backbone of a pipeline must read the pipeline's data set")

    @property
    def scales(self) -> tuple[Scale, ...]:
        """The feature scalings the classifiers use, in file order (one PCA plot each)."""
        return tuple(dict.fromkeys(Scale(c.scale) for c in self.classifiers))

    def with_overrides(
        self,
        *,
        dataset: str | None = None,
        limit: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        weights: str | os.PathLike[str] | None = None,
        device: str | None = None,
        precision: str | None = None,
        batch_size: int | None = None,
        n_jobs: int | None = None,
        skip_bad: bool | None = None,
        backbones: Sequence[str] = (),
        classifiers: Sequence[str] = (),
    ) -> PipelineSpec:
        """The same experiment retargeted, without editing its file (``featx run`` options).

        Args:
            dataset: read another data set (e.g. ``imagefolder:/tmp/cifar10-jpg``).
            limit: at most this many images per split (class-balanced).
            data_dir, weights, device, precision, batch_size: set for every backbone.
            n_jobs: fold workers of every fit.
            skip_bad: leave out image files that cannot be decoded (see :class:`ExtractConfig`).
            backbones: keep only these backbones (names as in the file).
            classifiers: keep only these classifiers (names as in the file).

        Raises:
            ConfigError: a bad value, or a name the pipeline does not have.
        """
        kept_backbones = _select(self.backbones, backbones, lambda c: c.backbone, "backbone")
        kept_classifiers = _select(self.classifiers, classifiers, lambda c: c.clf, "classifier")
        if dataset is not None:
            _check_dataset_spec(dataset, "--dataset")
        if weights is not None:
            _check_weights(weights, "--weights")
        if device is not None:
            _check_device(device, "--device")
        extract = {
            "dataset": dataset, "limit": limit, "data_dir": data_dir, "weights": weights, "device": device,
            "precision": precision, "batch_size": batch_size, "skip_bad": skip_bad,
        }
        extract = {key: value for key, value in extract.items() if value is not None}
        fit = {"n_jobs": n_jobs} if n_jobs is not None else {}
        return replace(
            self,
            dataset=extract.get("dataset", self.dataset),
            backbones=tuple(replace(config, **extract) for config in kept_backbones),
            classifiers=tuple(replace(config, **fit) for config in kept_classifiers),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for the run manifest and the report)."""
        from featx.core.hashing import jsonable

        def extract_options(config: ExtractConfig) -> dict[str, Any]:
            return {k: v for k, v in dataclasses.asdict(config).items() if v is not None and k not in ("force", "cache_dir")}

        return jsonable({
            "name": self.name,
            "description": self.description,
            "dataset": self.dataset,
            "source": str(self.source) if self.source else None,
            "backbones": [extract_options(c) for c in self.backbones],
            "classifiers": [{"clf": c.clf, "grid": c.resolved_grid, "cv": c.cv, "scale": Scale(c.scale).value, "pca": c.pca, "seed": c.seed}
                            for c in self.classifiers],
            "pca": dataclasses.asdict(self.pca) if self.pca else None,
        })


def _select(items: tuple[T, ...], names: Sequence[str], name_of: Callable[[T], str], kind: str) -> tuple[T, ...]:
    if not names:
        return items
    known = [name_of(item) for item in items]
    for name in names:
        if name not in known:
            close = closest_names(name, known)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"the pipeline has no {kind} {name!r}{hint} (it has {', '.join(dict.fromkeys(known))})")
    return tuple(item for item in items if name_of(item) in names)


# --------------------------------------------------------------------------- reading


def load_pipeline(path: str | os.PathLike[str]) -> PipelineSpec:
    """Read and check a pipeline YAML file.

    Raises:
        ConfigError: the file is missing, not YAML, or not a valid pipeline (the message
            names the key path).
    """
    import yaml

    file_path = Path(path).expanduser()
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read pipeline file {file_path}: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{file_path} is not valid YAML: {' '.join(str(error).split())}") from None
    try:
        return parse_pipeline(data, name=file_path.stem, source=file_path)
    except ConfigError as error:
        raise ConfigError(f"{file_path}: {error}") from None


def parse_pipeline(data: Any, *, name: str = "pipeline", source: Path | None = None) -> PipelineSpec:
    """Check a pipeline given as plain data (parsed YAML) and build its spec.

    Args:
        data: the mapping (see the module docstring for the schema).
        name: the experiment's name when ``data`` has none.
        source: the file it came from, kept for the record.

    Returns:
        The frozen spec.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, a bad grid, an unknown
            backbone, classifier or data set; the message starts with the key path.
    """
    if data is None:
        data = {}
    top = _mapping(data, "", TOP_LEVEL_KEYS)
    for key in ("dataset", "backbones", "classifiers"):
        if key not in top:
            raise ConfigError(f"{key}: missing; a pipeline needs dataset, backbones and classifiers")
    dataset, data_options = _dataset(top["dataset"])
    extract_defaults = _extract_defaults(top.get("extract") or {})
    fit_defaults = _mapping(top.get("fit") or {}, "fit", FIT_DEFAULT_KEYS, hint=lambda key: "; a grid belongs to one classifier: classifiers[i].grid" if key == "grid" else "")
    backbones = tuple(_backbone(entry, f"backbones[{i}]", dataset, data_options, extract_defaults)
                      for i, entry in enumerate(_list(top["backbones"], "backbones")))
    classifiers = tuple(_classifier(entry, f"classifiers[{i}]", fit_defaults)
                        for i, entry in enumerate(_list(top["classifiers"], "classifiers")))
    _check_unique_backbones(backbones)
    _check_unique_classifiers(classifiers)
    return PipelineSpec(
        name=_text(top.get("name", name), "name"),
        description=_text(top["description"], "description") if top.get("description") is not None else "",
        dataset=dataset,
        backbones=backbones,
        classifiers=classifiers,
        pca=_pca(top.get("pca", {})),
        source=source,
    )


def _dataset(value: Any) -> tuple[str, dict[str, Any]]:
    spec, options = _named(value, "dataset", DATASET_KEYS, what="cifar10, cifar100, mnist, fashion-mnist, digits or imagefolder:PATH")
    _check_dataset_spec(spec, "dataset.name")
    checked = _typed(ExtractConfig, options, "dataset")
    _build(ExtractConfig, {"backbone": "-", **checked}, "dataset", checked)
    return spec, checked


def _check_dataset_spec(spec: str, path: str) -> None:
    from featx.extraction.datasets import parse_spec

    try:
        parse_spec(spec)
    except FeatxError as error:
        raise ConfigError(f"{path}: {error}") from None


def _extract_hint(key: str) -> str:
    if key in DATASET_KEYS:
        return f"; set {key} under dataset: (every backbone must see the same images)"
    if key in ("force", "cache_dir"):
        return f"; {key} is an option of featx run, not of the file"
    return ""


def _extract_defaults(value: Any) -> dict[str, Any]:
    """The ``extract:`` options, checked once on their own (so a mistake is named there)."""
    defaults = _typed(ExtractConfig, _mapping(value, "extract", EXTRACT_KEYS, hint=_extract_hint), "extract")
    config = _build(ExtractConfig, {"backbone": "-", **defaults}, "extract", defaults)
    if "device" in defaults:
        _check_device(config.device, "extract.device")
    if "weights" in defaults:
        _check_weights(config.weights, "extract.weights")
    return defaults


def _backbone(entry: Any, path: str, dataset: str, data_options: Mapping[str, Any], defaults: Mapping[str, Any]) -> ExtractConfig:
    from featx.extraction.backbones import resolve_backbone, resolve_data_config

    name, options = _named(entry, path, EXTRACT_KEYS, what="a timm model name such as resnet50", hint=_extract_hint)
    backbone = _resolve(resolve_backbone, name, f"{path}.name")
    own = _typed(ExtractConfig, options, path)
    merged = {**defaults, **own}
    config = _build(ExtractConfig, {"backbone": name, "dataset": dataset, **data_options, **merged}, path, own)

    def where(key: str) -> str:
        return f"{path}.{key}" if key in own else f"extract.{key}"

    _check_device(config.device, where("device"))
    _check_weights(config.weights, where("weights"))
    overrides = {k: getattr(config, k) for k in ("image_size", "interpolation", "mean", "std", "crop_pct", "crop_mode") if getattr(config, k) is not None}
    try:  # the preprocessing overrides, checked as extraction will resolve them (no model built)
        resolve_data_config(backbone, **overrides)
    except ConfigError as error:
        for key, value in overrides.items():
            try:
                resolve_data_config(backbone, **{key: value})
            except ConfigError:
                raise ConfigError(f"{where(key)}: {error}") from None
        raise ConfigError(f"{path}: {error}") from None
    return config


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _check_device(device: str, path: str) -> None:
    """The syntax only: whether CUDA is there is checked when the extraction runs."""
    if not _DEVICE.match(str(device).strip().lower()):
        raise ConfigError(f"{path}: {device!r} is not a device; use auto, cpu, cuda or cuda:<index>")


def _check_weights(weights: str | os.PathLike[str], path: str) -> None:
    text = os.fspath(weights)
    if text not in ("pretrained", "random") and not Path(text).expanduser().is_file():
        raise ConfigError(f"{path}: {text!r} is neither pretrained, random, nor an existing checkpoint file")


def _classifier(entry: Any, path: str, defaults: Mapping[str, Any]) -> FitConfig:
    from featx.fitting.classifiers import get_classifier

    clf, options = _named(entry, path, FIT_KEYS, what="one of the classifiers of featx fit --help")
    spec = _resolve(get_classifier, clf, f"{path}.name")
    grid_entry = options.pop("grid", None)
    grid = {} if grid_entry is None else _grid(spec, _mapping(grid_entry, f"{path}.grid", tuple(p.name for p in spec.grid)), f"{path}.grid")
    merged = {**_typed(FitConfig, defaults, "fit"), **_typed(FitConfig, options, path)}
    return _build(FitConfig, {"clf": clf, "grid": grid, **merged}, path, merged)


def _grid(spec: Any, grid: Mapping[str, Any], path: str) -> dict[str, str]:
    """Grid values as spec text, each checked by the classifier's own grid parser.

    A list is joined into a comma list, so YAML numbers such as ``1e-3`` (which YAML 1.1
    reads as text) and real numbers are parsed by the same rules as ``--C-grid``.
    """
    texts: dict[str, str] = {}
    for name, value in grid.items():
        where = f"{path}.{name}"
        if isinstance(value, (list, tuple)):
            if not value or any(isinstance(v, (list, tuple, dict)) or isinstance(v, bool) or v is None for v in value):
                raise ConfigError(f"{where}: expected a non-empty list of values, got {value!r}")
            text = ",".join(str(v) for v in value)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value)
        else:
            raise ConfigError(f"{where}: expected a list of values or a spec such as logspace:-4:0:5, got {value!r}")
        try:
            spec.resolve_grid({name: text})
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        texts[name] = text
    return texts


def _pca(value: Any) -> PcaOptions | None:
    if value is False or value is None:
        return None
    if value is True:
        return PcaOptions()
    options = _typed(PcaOptions, _mapping(value, "pca", tuple(f.name for f in dataclasses.fields(PcaOptions))), "pca")
    return _build(PcaOptions, options, "pca", options)


def _check_unique_backbones(backbones: tuple[ExtractConfig, ...]) -> None:
    seen: dict[ExtractConfig, int] = {}
    for index, config in enumerate(backbones):
        if config in seen:
            raise ConfigError(f"backbones[{index}]: the same backbone and options as backbones[{seen[config]}]")
        seen[config] = index


def _check_unique_classifiers(classifiers: tuple[FitConfig, ...]) -> None:
    """The report has one column per classifier, scaling and PCA: two entries may not share one."""
    seen: dict[tuple[str, str, int | None], int] = {}
    for index, config in enumerate(classifiers):
        column = (config.clf, Scale(config.scale).value, config.pca)
        if column in seen:
            raise ConfigError(
                f"classifiers[{index}]: {config.clf} with the same scale and pca as classifiers[{seen[column]}]; "
                "the report shows one result per classifier, scale and pca: merge the two grids, or change scale or pca"
            )
        seen[column] = index


# --------------------------------------------------------------------------- generic checks


def _mapping(value: Any, path: str, allowed: Sequence[str], *, hint: Callable[[str], str] = lambda key: "") -> dict[str, Any]:
    """``value`` as a dict with only ``allowed`` keys; an unknown key names the closest ones."""
    where = path or "the pipeline"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(allowed)}, got {_describe(value)}")
    for key in value:
        if not isinstance(key, str) or key not in allowed:
            close = closest_names(str(key), allowed)
            suggestion = f"; did you mean {', '.join(close)}?" if close else ""
            extra = hint(str(key))
            raise ConfigError(f"{_join(path, str(key))}: unknown key{suggestion}{extra or ''} (valid: {', '.join(allowed)})")
    return dict(value)


def _named(value: Any, path: str, keys: Sequence[str], *, what: str, hint: Callable[[str], str] = lambda key: "") -> tuple[str, dict[str, Any]]:
    """An entry given as a name, or as a mapping of ``name`` and options: ``(name, options)``."""
    if isinstance(value, str):
        value = {"name": value}
    options = _mapping(value, path, ("name", *keys), hint=hint)
    if "name" not in options:
        raise ConfigError(f"{path}.name: missing ({what})")
    return _text(options.pop("name"), f"{path}.name"), options


def _resolve(lookup: Callable[[str], T], name: str, path: str) -> T:
    """``lookup(name)`` from a registry; its error (with the closest names) prefixed by ``path``."""
    try:
        return lookup(name)
    except FeatxError as error:
        raise ConfigError(f"{path}: {error}") from None


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: expected a non-empty list, got {_describe(value)}")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: expected text, got {_describe(value)}")
    return value.strip()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    kind = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "a mapping", type(None): "nothing"}
    return f"{value!r} ({kind.get(type(value), type(value).__name__)})" if value is not None else "nothing"


def _typed(cls: type, values: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Check each value against the type annotation of the dataclass field of that name.

    YAML gives numbers, text, true/false, lists and mappings; a field typed ``float``
    also takes text that is a number (YAML 1.1 reads ``1e-3`` as text) and a field typed
    as a tuple takes a list.

    Raises:
        ConfigError: a value of the wrong type, naming ``path.key`` and what was expected.
    """
    hints = typing.get_type_hints(cls)
    checked: dict[str, Any] = {}
    for key, value in values.items():
        accepted = _accepted(hints.get(key, Any))
        converted = _convert(value, accepted)
        if converted is _REJECTED:
            raise ConfigError(f"{_join(path, key)}: expected {' or '.join(dict.fromkeys(_NAMES[a] for a in accepted))}, got {_describe(value)}")
        checked[key] = converted
    return checked


_REJECTED = object()
_NAMES = {bool: "true/false", int: "a whole number", float: "a number", str: "text", list: "a list", dict: "a mapping", type(None): "null", object: "anything"}


def _accepted(annotation: Any) -> tuple[type, ...]:
    """The YAML types a field annotation takes: ``int | None`` -> ``(int, NoneType)``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return tuple(dict.fromkeys(t for member in typing.get_args(annotation) for t in _accepted(member)))
    if annotation is Any:
        return (object,)
    if annotation is type(None):
        return (type(None),)
    target = origin or annotation
    if isinstance(target, type):
        if issubclass(target, enum.Enum) or issubclass(target, (str, os.PathLike)):
            return (str,)
        if target is bool:
            return (bool,)
        if target is int:
            return (int,)
        if target is float:
            return (float,)
        if issubclass(target, Mapping):
            return (dict,)
        if issubclass(target, (tuple, list, Sequence)):
            return (list,)
    return (object,)


def _convert(value: Any, accepted: tuple[type, ...]) -> Any:
    if object in accepted or (value is None and type(None) in accepted):
        return value
    if isinstance(value, bool):
        return value if bool in accepted else _REJECTED
    if isinstance(value, int) and int in accepted:
        return value
    if isinstance(value, (int, float)) and float in accepted:
        return float(value)
    if isinstance(value, str):
        if str in accepted:
            return value
        if float in accepted:
            try:
                return float(value)
            except ValueError:
                return _REJECTED
    if isinstance(value, list) and list in accepted:
        return tuple(value)
    if isinstance(value, dict) and dict in accepted:
        return value
    return _REJECTED


def _build(cls: Callable[..., T], values: Mapping[str, Any], path: str, blame: Mapping[str, Any]) -> T:
    """``cls(**values)``; its ConfigError is prefixed with the path of the key that caused it.

    The key is found by building ``cls`` again with the keys of ``blame`` one at a time
    (the configs check themselves cheaply, without I/O).
    """
    try:
        return cls(**values)
    except (ConfigError, TypeError, ValueError) as error:  # TypeError/ValueError: e.g. mean: [a, b, c]
        base = {k: v for k, v in values.items() if k not in blame}
        for key, value in blame.items():
            try:
                cls(**{**base, key: value})
            except (ConfigError, TypeError, ValueError):
                raise ConfigError(f"{_join(path, key)}: {error}") from None
        raise ConfigError(f"{path}: {error}") from None

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
      - {name: knn, grid: {n_neighbors: [1, 3, 5], vote: [uniform, distance]}}
    pca: {per_class: 200}                 # or false: no PCA plots
    curves:                               # data-efficiency curves on every backbone (optional)
      - {clf: logreg, shots: "1,5,20,full", repeats: 5}

The document is checked by pydantic models whose sections reuse the field declarations
of the stages' own configs (:class:`~featx.extraction.config.ExtractConfig`,
:class:`~featx.extraction.config.ExtractOptions`, :class:`~featx.fitting.config.FitConfig`,
:class:`~featx.fitting.projection.PcaConfig`), so a value is valid in a file exactly when it
is valid in the Python API and on the command line. :func:`parse_pipeline` then builds a
frozen :class:`PipelineSpec` of those configs. A mistake is a
:class:`~featx.core.errors.ConfigError` naming its key path, e.g.
``backbones[2].image_size: expected a whole number or null, got 'big' (text)``. Backbone
names are resolved in timm's registry (offline, no model is built).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, create_model

from featx.core.devices import check_device
from featx.core.errors import ConfigError, FeatxError
from featx.core.registry import closest_names
from featx.core.schema import Config, describe_value
from featx.extraction.config import ExtractConfig, ExtractOptions, ExtractRequest
from featx.fitting.classifiers import Scale
from featx.fitting.config import FitConfig, check_n_jobs
from featx.fitting.curves import CurveConfig
from featx.fitting.projection import PcaConfig

T = TypeVar("T")

TOP_LEVEL_KEYS = ("name", "description", "dataset", "extract", "backbones", "fit", "classifiers", "pca", "curves")
#: ExtractConfig fields that describe the data set: set once, under ``dataset:``, so that
#: every backbone sees the same images and the comparison is fair
DATASET_CONFIG_KEYS = ("limit", "seed", "test_fraction", "skip_bad")
DATASET_OPTION_KEYS = ("data_dir", "download")
DATASET_KEYS = (*DATASET_CONFIG_KEYS, *DATASET_OPTION_KEYS)
#: what a backbone (or ``extract:``) may set: the rest of ExtractConfig, and how it runs
EXTRACT_CONFIG_KEYS = tuple(name for name in ExtractConfig.model_fields if name not in (*DATASET_CONFIG_KEYS, "backbone"))
EXTRACT_OPTION_KEYS = ("device", "batch_size", "num_workers")
#: what a classifier (or ``fit:``) may set; ``n_jobs`` only under ``fit:``, for every classifier
FIT_CONFIG_KEYS = tuple(name for name in FitConfig.model_fields if name not in ("clf", "grid"))
PCA_KEYS = tuple(name for name in PcaConfig.model_fields if name != "scale")


# --------------------------------------------------------------------------- the document's schema


def _fields(model: type[Config], names: Sequence[str]) -> dict[str, Any]:
    """``create_model`` arguments that declare ``names`` exactly as ``model`` does."""
    return {name: (model.model_fields[name].annotation, model.model_fields[name]) for name in names}


def _named(value: Any) -> Any:
    """An entry given as a bare name is the mapping ``{name: ...}``."""
    return {"name": value} if isinstance(value, str) else value


def _extract_hint(key: str) -> str:
    if key in DATASET_KEYS:
        return f"; set {key} under dataset: (every backbone must see the same images)"
    if key in ("force", "cache_dir"):
        return f"; {key} is an option of featx run, not of the file"
    return ""


class _ExtractSection(Config):
    @classmethod
    def unknown_key_hint(cls, key: str) -> str:
        return _extract_hint(key)


class _FitSection(Config):
    @classmethod
    def unknown_key_hint(cls, key: str) -> str:
        if key == "grid":
            return "; a grid belongs to one classifier: classifiers[i].grid"
        if key in ("n_jobs", "device"):
            return f"; {key} is set for every classifier, under fit:"
        return ""


Name = Annotated[str, Field(min_length=1)]
#: ``dataset:``: the data set spec and what every backbone shares about it
DatasetSection: Any = create_model(
    "DatasetSection",
    __base__=Config,
    name=(Name, ...),
    **_fields(ExtractConfig, DATASET_CONFIG_KEYS),
    **_fields(ExtractOptions, DATASET_OPTION_KEYS),
)
#: ``extract:``: options of every backbone
ExtractSection: Any = create_model(
    "ExtractSection",
    __base__=_ExtractSection,
    **_fields(ExtractConfig, EXTRACT_CONFIG_KEYS),
    **_fields(ExtractOptions, EXTRACT_OPTION_KEYS),
)
#: one entry of ``backbones:``
BackboneEntry: Any = create_model("BackboneEntry", __base__=ExtractSection, name=(Name, ...))
#: ``fit:``: options of every classifier
FitSection: Any = create_model(
    "FitSection",
    __base__=_FitSection,
    **_fields(FitConfig, FIT_CONFIG_KEYS),
    n_jobs=(Annotated[int, BeforeValidator(check_n_jobs)], -1),
    device=(Annotated[str, AfterValidator(check_device)], "auto"),
)
#: one entry of ``classifiers:``
ClassifierEntry: Any = create_model(
    "ClassifierEntry", __base__=_FitSection, name=(Name, ...), grid=(dict[str, Any] | None, None), **_fields(FitConfig, FIT_CONFIG_KEYS)
)
#: ``pca:``: the PCA plots of every backbone (the scalings are the classifiers')
PcaSection: Any = create_model("PcaSection", __base__=Config, **_fields(PcaConfig, PCA_KEYS))


def _empty_if_none(value: Any) -> Any:
    """``extract:`` or ``fit:`` left empty (null) means no options."""
    return {} if value is None else value


def _pca_section(value: Any) -> Any:
    if value is False or value is None:
        return None
    return {} if value is True else value


class PipelineDocument(Config):
    """A pipeline file as written, checked key by key (types, ranges, unknown keys)."""

    name: Name | None = None
    description: str | None = None
    dataset: Annotated[DatasetSection, BeforeValidator(_named)]
    extract: Annotated[ExtractSection, BeforeValidator(_empty_if_none)] = Field(default_factory=ExtractSection)
    backbones: Annotated[list[Annotated[BackboneEntry, BeforeValidator(_named)]], Field(min_length=1)]
    fit: Annotated[FitSection, BeforeValidator(_empty_if_none)] = Field(default_factory=FitSection)
    classifiers: Annotated[list[Annotated[ClassifierEntry, BeforeValidator(_named)]], Field(min_length=1)]
    pca: Annotated[PcaSection | None, BeforeValidator(_pca_section)] = Field(default_factory=PcaSection)
    curves: list[dict[str, Any]] = Field(default_factory=list)


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class PipelineSpec:
    """A parsed pipeline: every backbone's extraction and every classifier's fit, checked.

    Attributes:
        name: the experiment's name (names its manifest under ``reports/pipelines/``).
        dataset: the data set spec every backbone reads (``cifar10``, ``imagefolder:PATH``).
        backbones: one extraction request per backbone, in file order.
        classifiers: one fit config per classifier, in file order.
        n_jobs: fold workers of every fit.
        fit_device: where the torch solvers of every fit run.
        pca: PCA plot options (``per_class``, ``seed``; the scalings are the
            classifiers'), or None for no plots.
        curves: data-efficiency curves drawn on every backbone's features (``curves:``,
            entries ``{clf, shots, repeats, grid, cv, scale, seed}``).
        description: free text for the report.
        source: the file it was read from, if any.
    """

    name: str
    dataset: str
    backbones: tuple[ExtractRequest, ...]
    classifiers: tuple[FitConfig, ...]
    n_jobs: int = -1
    fit_device: str = "auto"
    pca: PcaConfig | None = field(default_factory=PcaConfig)
    curves: tuple[CurveConfig, ...] = ()
    description: str = ""
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.backbones:
            raise ConfigError("a pipeline needs at least one backbone", field="backbones")
        if not self.classifiers:
            raise ConfigError("a pipeline needs at least one classifier", field="classifiers")
        if any(request.dataset != self.dataset for request in self.backbones):
            raise ConfigError("every backbone of a pipeline must read the pipeline's data set", field="dataset")

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
            data_dir, weights, precision, batch_size: set for every backbone.
            device: where every backbone is extracted and every fit's torch solver runs.
            n_jobs: fold workers of every fit.
            skip_bad: leave out image files that cannot be decoded (see :class:`ExtractConfig`).
            backbones: keep only these backbones (names as in the file).
            classifiers: keep only these classifiers (names as in the file).

        Raises:
            ConfigError: a bad value (naming its field), or a name the pipeline does not have.
        """
        kept_backbones = _select(self.backbones, backbones, lambda r: r.config.backbone, "backbone", "backbones")
        kept_classifiers = _select(self.classifiers, classifiers, lambda c: c.clf, "classifier", "classifiers")
        configs = _given(limit=limit, weights=weights, precision=precision, skip_bad=skip_bad)
        options = _given(data_dir=data_dir, device=device, batch_size=batch_size)
        requests = tuple(
            request.replace(
                dataset=dataset or request.dataset, config=request.config.replace(**configs), options=request.options.replace(**options)
            )
            for request in kept_backbones
        )
        if weights is not None:
            _check_weights(str(weights), field="weights")
        return replace(
            self,
            fit_device=self.fit_device if device is None else check_device(device),
            dataset=dataset or self.dataset,
            backbones=requests,
            classifiers=kept_classifiers,
            n_jobs=self.n_jobs if n_jobs is None else check_n_jobs(n_jobs),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for the run manifest and the report)."""
        from featx.core.hashing import jsonable

        return jsonable(
            {
                "name": self.name,
                "description": self.description,
                "dataset": self.dataset,
                "source": str(self.source) if self.source else None,
                "backbones": [
                    {
                        **{k: v for k, v in r.config.fields().items() if v is not None},
                        **{k: v for k, v in r.options.fields().items() if v is not None and k not in ("force", "cache_dir")},
                        "dataset": r.dataset,
                    }
                    for r in self.backbones
                ],
                "classifiers": [
                    {
                        "clf": c.clf,
                        "grid": c.spec.public_point(c.grid),
                        "cv": c.cv,
                        "scale": Scale(c.scale).value,
                        "pca": c.pca,
                        "seed": c.seed,
                    }
                    for c in self.classifiers
                ],
                "n_jobs": self.n_jobs,
                "fit_device": self.fit_device,
                "pca": {"per_class": self.pca.per_class, "seed": self.pca.seed} if self.pca else None,
                "curves": [
                    {
                        "clf": c.fit.clf,
                        "grid": c.fit.spec.public_point(c.fit.grid),
                        "cv": c.fit.cv,
                        "scale": Scale(c.fit.scale).value,
                        "seed": c.fit.seed,
                        "shots": c.shots,
                        "repeats": c.repeats,
                    }
                    for c in self.curves
                ],
            }
        )


def _given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _select(items: tuple[T, ...], names: Sequence[str], name_of: Callable[[T], str], kind: str, field_name: str) -> tuple[T, ...]:
    if not names:
        return items
    known = [name_of(item) for item in items]
    for name in names:
        if name not in known:
            close = closest_names(name, known)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"the pipeline has no {kind} {name!r}{hint} (it has {', '.join(dict.fromkeys(known))})", field=field_name)
    return tuple(item for item in items if name_of(item) in names)


# --------------------------------------------------------------------------- reading


def load_pipeline(path: str | os.PathLike[str]) -> PipelineSpec:
    """Read and check a pipeline YAML file.

    The file is read as UTF-8 and parsed within limits (:mod:`featx.core.yamlfile`): a
    key given twice, an alias bomb, a nesting too deep or another encoding is an error.

    Raises:
        ConfigError: the file is missing, not UTF-8, not YAML, or not a valid pipeline
            (the message names the file and the key path, or the lines).
    """
    from featx.core.yamlfile import load_yaml_file

    file_path = Path(path).expanduser()
    data = load_yaml_file(file_path, what="pipeline file")
    try:
        return parse_pipeline(data, name=file_path.stem, source=file_path)
    except ConfigError as error:
        raise type(error)(f"{error}", field="", path=str(file_path)) from None


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
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of {', '.join(TOP_LEVEL_KEYS)}, got {describe_value(data)}")
    missing = [key for key in ("dataset", "backbones", "classifiers") if key not in data]
    if missing:
        raise ConfigError("missing; a pipeline needs dataset, backbones and classifiers", field=missing[0])
    document = PipelineDocument.from_mapping(data)
    shared_config = document.dataset.given()
    dataset = shared_config.pop("name")
    _check_dataset_spec(dataset, "dataset.name")
    shared_options = {key: shared_config.pop(key) for key in DATASET_OPTION_KEYS if key in shared_config}
    backbones = tuple(
        _backbone(entry, f"backbones[{i}]", dataset, shared_config, shared_options, document.extract)
        for i, entry in enumerate(document.backbones)
    )
    classifiers = tuple(_classifier(entry, f"classifiers[{i}]", document.fit) for i, entry in enumerate(document.classifiers))
    _check_unique_backbones(backbones)
    _check_unique_classifiers(classifiers)
    pca = None if document.pca is None else PcaConfig(**document.pca.given())
    curves = tuple(_curve(entry, f"curves[{i}]") for i, entry in enumerate(document.curves))
    return PipelineSpec(
        name=(document.name or name).strip(),
        description=(document.description or "").strip(),
        dataset=dataset,
        backbones=backbones,
        classifiers=classifiers,
        n_jobs=document.fit.fields()["n_jobs"],
        fit_device=document.fit.fields()["device"],
        pca=pca,
        curves=curves,
        source=source,
    )


def _curve(entry: Mapping[str, Any], path: str) -> CurveConfig:
    """One ``curves:`` entry: ``clf`` and the fit's keys (``grid``, ``cv``, ``scale``, ``seed``), ``shots``, ``repeats``.

    Raises:
        ConfigError: located at ``curves[i]``.
    """
    known = {"clf", "grid", "cv", "scale", "seed", "shots", "repeats"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; a curve takes {', '.join(sorted(known))}", path=path)
    if "clf" not in entry:
        raise ConfigError("missing; a curve names its classifier", field="clf", path=path)
    fit = {key: entry[key] for key in ("clf", "grid", "cv", "scale", "seed") if key in entry}
    rest = {key: entry[key] for key in ("shots", "repeats") if key in entry}
    try:
        return CurveConfig(fit=FitConfig(**fit, solver="sklearn"), **rest)
    except ConfigError as error:
        raise error.located(path) from None


def _check_dataset_spec(spec: str, path: str) -> None:
    from featx.extraction.datasets import parse_spec

    try:
        parse_spec(spec)
    except FeatxError as error:
        raise ConfigError(str(error), path=path) from None


def _backbone(
    entry: Config, path: str, dataset: str, shared_config: Mapping[str, Any], shared_options: Mapping[str, Any], defaults: Config
) -> ExtractRequest:
    from featx.extraction.backbones import resolve_backbone, resolve_data_config

    fields = entry.fields()
    name = fields.pop("name")
    own, inherited = entry.given(), defaults.given()
    own.pop("name")
    merged = {**inherited, **own}

    def where(key: str) -> str:
        return f"{path}.{key}" if key in own else f"extract.{key}"

    backbone = _resolve(resolve_backbone, name, f"{path}.name")
    config = ExtractConfig(backbone=name, **shared_config, **{k: v for k, v in merged.items() if k in EXTRACT_CONFIG_KEYS})
    options = ExtractOptions(**shared_options, **{k: v for k, v in merged.items() if k in EXTRACT_OPTION_KEYS})
    _check_weights(config.weights, path=where("weights"))
    overrides = {
        k: getattr(config, k)
        for k in ("image_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
        if getattr(config, k) is not None
    }
    try:  # the preprocessing overrides, checked as extraction will resolve them (no model built)
        resolve_data_config(backbone, **overrides)
    except ConfigError as error:
        for key, value in overrides.items():
            try:
                resolve_data_config(backbone, **{key: value})
            except ConfigError:
                raise ConfigError(error.problem, path=where(key)) from None
        raise ConfigError(error.problem, path=path) from None
    return ExtractRequest(dataset=dataset, config=config, options=options)


def _check_weights(weights: str, *, path: str = "", field: str = "") -> None:
    if weights not in ("pretrained", "random") and not Path(weights).expanduser().is_file():
        raise ConfigError(f"{weights!r} is neither pretrained, random, nor an existing checkpoint file", path=path, field=field)


def _classifier(entry: Config, path: str, defaults: Config) -> FitConfig:
    from featx.fitting.classifiers import get_classifier

    own = entry.given()
    name, grid = own.pop("name"), own.pop("grid", None)
    _resolve(get_classifier, name, f"{path}.name")
    inherited = {k: v for k, v in defaults.given().items() if k in FIT_CONFIG_KEYS}
    try:
        return FitConfig(clf=name, grid=_grid_texts(grid, f"{path}.grid"), **{**inherited, **own})
    except ConfigError as error:
        where = path if error.field.split(".")[0] in (*own, "grid") else "fit"
        raise error.located(where) from None


def _grid_texts(grid: Mapping[str, Any] | None, path: str) -> dict[str, str]:
    """Grid values as spec text, checked by the classifier's own grid parser.

    A list is joined into a comma list, so YAML numbers such as ``1e-3`` (which YAML 1.1
    reads as text) and real numbers are parsed by the same rules as ``--C-grid``.
    """
    texts: dict[str, str] = {}
    for name, value in (grid or {}).items():
        if isinstance(value, (list, tuple)):
            if not value or any(isinstance(v, (list, tuple, dict, bool)) or v is None for v in value):
                raise ConfigError(f"expected a non-empty list of values, got {describe_value(value)}", path=f"{path}.{name}")
            texts[str(name)] = ",".join(str(v) for v in value)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            texts[str(name)] = str(value)
        else:
            raise ConfigError(
                f"expected a list of values or a spec such as logspace:-4:0:5, got {describe_value(value)}", path=f"{path}.{name}"
            )
    return texts


def _check_unique_backbones(backbones: tuple[ExtractRequest, ...]) -> None:
    seen: dict[ExtractRequest, int] = {}
    for index, request in enumerate(backbones):
        if request in seen:
            raise ConfigError(f"the same backbone and options as backbones[{seen[request]}]", path=f"backbones[{index}]")
        seen[request] = index


def _check_unique_classifiers(classifiers: tuple[FitConfig, ...]) -> None:
    """The report has one column per classifier, scaling and PCA: two entries may not share one."""
    seen: dict[tuple[str, str, int | None], int] = {}
    for index, config in enumerate(classifiers):
        column = (config.clf, Scale(config.scale).value, config.pca)
        if column in seen:
            raise ConfigError(
                f"{config.clf} with the same scale and pca as classifiers[{seen[column]}]; "
                "the report shows one result per classifier, scale and pca: merge the two grids, or change scale or pca",
                path=f"classifiers[{index}]",
            )
        seen[column] = index


def _resolve(lookup: Callable[[str], T], name: str, path: str) -> T:
    """``lookup(name)`` from a registry; its error (with the closest names) located at ``path``."""
    try:
        return lookup(name)
    except ConfigError as error:
        raise type(error)(error.problem, path=path) from None
    except FeatxError as error:
        raise ConfigError(str(error), path=path) from None

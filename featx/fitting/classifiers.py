"""The classifier registry: what ``featx fit --clf NAME`` can fit, with default grids.

Each entry is a frozen :class:`ClassifierSpec`: the scikit-learn estimator with its fixed
parameters, the grid parameters users may sweep (with their default values and the
command-line option that sets them), and the *searcher* that scores a whole grid on one
cross-validation fold while sharing work (see :mod:`featx.fitting.search`). Adding a classifier
is one entry here; a grid parameter without a dedicated option is set with
``--grid NAME=SPEC``. For example, a ridge classifier::

    "ridge": ClassifierSpec(
        name="ridge",
        summary="RidgeClassifier (least squares on +/-1 targets)",
        make_estimator=lambda seed: RidgeClassifier(),
        grid=(GridParam("alpha", "--grid alpha=", ValueRule("float", exclusive_minimum=0), (0.1, 1.0, 10.0), "regularisation"),),
        searcher=search_each,
    )
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featx.core import registry
from featx.core.errors import ConfigError
from featx.fitting.grids import GridValue, ValueRule, as_number, format_values, normalize_values
from featx.fitting.search import Searcher, search_each, search_knn, search_linearsvc_path

if TYPE_CHECKING:  # scikit-learn is imported when an estimator is made, not to list the registry
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline


class Scale(str, enum.Enum):
    """How features are scaled before the estimator (fitted on the training rows only)."""

    STANDARD = "standard"  #: zero mean, unit variance per feature (StandardScaler)
    L2 = "l2"  #: each sample to unit Euclidean length (Normalizer)
    NONE = "none"  #: as extracted


@dataclass(frozen=True)
class GridParam:
    """One hyper-parameter users may sweep.

    Attributes:
        name: the estimator's parameter name (``C``, ``n_neighbors``, ...); also its key
            in the grid, ``best_params`` and the run record, unless ``alias`` is set.
        option: the command-line option that sets it.
        rule: what its values must be.
        default: the values swept when the user gives none.
        help: one line for ``--help``.
        at_most_rows: its values count training rows (k of k-NN): none may exceed the
            rows a CV fold trains on. Default values beyond them are dropped with a
            warning (:meth:`ClassifierSpec.fit_defaults`); given values are an error.
        alias: featx's own name for it where the estimator's would be ambiguous (k-NN's
            vote weighting is ``vote``, not ``weights``, which names a backbone's weights
            everywhere else): the key in pipeline files, run records and reports. The
            estimator's name is accepted too, and is what the run key hashes.
    """

    name: str
    option: str
    rule: ValueRule
    default: tuple[GridValue, ...]
    help: str
    at_most_rows: bool = False
    alias: str | None = None

    @property
    def public_name(self) -> str:
        """The name users see: the alias, else the estimator's."""
        return self.alias or self.name


@dataclass(frozen=True)
class ClassifierSpec:
    """A registered classifier.

    Attributes:
        name: the ``--clf`` name.
        summary: one line for ``--help``.
        make_estimator: ``seed -> estimator`` with the fixed (non-grid) parameters.
        grid: the sweepable parameters.
        searcher: scores every grid point of one fold (shares work where it can).
    """

    name: str
    summary: str
    make_estimator: Callable[[int], BaseEstimator]
    grid: tuple[GridParam, ...]
    searcher: Searcher

    def param(self, name: str) -> GridParam:
        """The grid parameter called ``name``.

        Raises:
            UnknownNameError: not a grid parameter of this classifier.
        """
        try:
            return registry.lookup({**{p.name: p for p in self.grid}, **self.aliases}, name, kind=f"grid parameter of {self.name}")
        except ConfigError as error:
            raise type(error)(error.problem, field=f"grid.{name}") from None

    @property
    def aliases(self) -> dict[str, GridParam]:
        """The grid parameters users name otherwise than the estimator, by that name."""
        return {p.alias: p for p in self.grid if p.alias}

    def public_point(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """``point`` (grid names -> values) with each parameter under the name users see."""
        public = {p.name: p.public_name for p in self.grid}
        return {public.get(name, name): value for name, value in point.items()}

    def default_grid(self) -> dict[str, tuple[GridValue, ...]]:
        """The grid swept when the user gives none."""
        return {p.name: p.default for p in self.grid}

    def resolve_grid(self, given: Mapping[str, str | Sequence[Any]] | None = None) -> dict[str, tuple[GridValue, ...]]:
        """The full grid: the values given (spec strings or lists, checked) over the defaults.

        Raises:
            ConfigError: an unknown parameter or a bad value.
        """
        grid = self.default_grid()
        aliases = self.aliases
        named = {name for name in (given or {}) if name in aliases}
        for alias in named:
            if aliases[alias].name in (given or {}):
                raise ConfigError(f"give {alias} or {aliases[alias].name}, not both (the same parameter)", field=f"grid.{alias}")
        for name, values in (given or {}).items():
            if name in aliases or name in {p.name for p in self.grid}:
                param = self.param(name)
                grid[param.name] = normalize_values(values, field=f"grid.{name}", rule=param.rule)
            else:
                grid[name] = self.estimator_values(name, values)
        return grid

    def estimator_values(self, name: str, values: str | Sequence[Any]) -> tuple[GridValue, ...]:
        """Values of an estimator parameter without a grid rule of its own (``max_iter``,
        ``tol``, ``penalty``, ``class_weight``, ...), checked by scikit-learn's own
        parameter constraints (``_parameter_constraints``), one value at a time.

        Combinations scikit-learn refuses only together (``penalty=l1`` with the lbfgs
        solver) are not known here: they fail when fitted.

        Raises:
            UnknownNameError: the estimator has no such parameter (the message names the close ones).
            ConfigError: a value the parameter's constraints refuse, naming ``grid.<name>``.
        """
        estimator = self.make_estimator(0)
        params = estimator.get_params()
        if name not in params:
            known = sorted({*params, *(p.name for p in self.grid)})
            try:
                registry.lookup(dict.fromkeys(known), name, kind=f"parameter of {type(estimator).__name__}")
            except ConfigError as error:
                raise type(error)(error.problem, field=f"grid.{name}") from None
        parsed = normalize_values(values, field=f"grid.{name}", rule=ValueRule("any"))
        constraints = getattr(type(estimator), "_parameter_constraints", {}).get(name)
        if constraints is not None:
            from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

            for value in parsed:
                try:
                    validate_parameter_constraints({name: constraints}, {name: value}, caller_name=type(estimator).__name__)
                except InvalidParameterError as error:
                    raise ConfigError(f"bad value {value!r}: {error}", field=f"grid.{name}") from None
        return parsed

    def fit_defaults(
        self, grid: Mapping[str, tuple[GridValue, ...]], rows: int
    ) -> tuple[dict[str, tuple[GridValue, ...]], dict[str, tuple[GridValue, ...]]]:
        """``grid`` with the default values that ``rows`` training rows cannot fit dropped.

        Only a parameter still at its default values is trimmed (an explicit grid that
        cannot fit stays an error, raised when the folds are made), and never to nothing.

        Returns:
            ``(grid, dropped)``: the grid to search, and parameter -> the values dropped.
        """
        trimmed, dropped = dict(grid), {}
        for param in self.grid:
            values = grid.get(param.name, ())
            if not param.at_most_rows or tuple(values) != param.default:
                continue
            kept = tuple(v for v in values if as_number(v) <= rows)
            if kept and len(kept) < len(values):
                trimmed[param.name] = kept
                dropped[param.name] = tuple(v for v in values if as_number(v) > rows)
        return trimmed, dropped

    def fixed_params(self, seed: int, swept: Sequence[str] = ()) -> dict[str, Any]:
        """The estimator's parameters that no grid point changes (JSON-friendly): all but
        the grid parameters and the others ``swept``."""
        excluded = {*(p.name for p in self.grid), *swept}
        return {k: v for k, v in sorted(self.make_estimator(seed).get_params().items()) if k not in excluded}

    def describe(self) -> str:
        """``name: summary`` and the default grid, as ``--help`` lists it."""
        grid = "; ".join(f"{p.option} {format_values(p.default)}" for p in self.grid)
        return f"{self.name}: {self.summary} [defaults: {grid}]"


def parse_scale(scale: Scale | str) -> Scale:
    """``"l2"`` -> ``Scale.L2``.

    Raises:
        ConfigError: not a scaling featx knows.
    """
    try:
        return Scale(scale)
    except ValueError:
        raise ConfigError(f"unknown scaling {scale!r}; use one of {', '.join(s.value for s in Scale)}") from None


def make_scaler(scale: Scale | str) -> Any:
    """The scaling step for ``scale`` (``"passthrough"`` for none)."""
    from sklearn.preprocessing import Normalizer, StandardScaler

    kind = parse_scale(scale)
    if kind is Scale.STANDARD:
        return StandardScaler()
    if kind is Scale.L2:
        return Normalizer(norm="l2")
    return "passthrough"


def build_pipeline(
    spec: ClassifierSpec, *, scale: Scale | str, pca: int | None, seed: int, params: Mapping[str, Any] | None = None
) -> Pipeline:
    """The scikit-learn Pipeline of a run: scaling, optional PCA, the estimator.

    Args:
        spec: the classifier.
        scale: scaling step.
        pca: components to keep, or None for no PCA step.
        seed: random state of PCA and the estimator.
        params: estimator parameters to set (a grid point), e.g. ``{"C": 0.01}``.
    """
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline

    steps: list[tuple[str, Any]] = [("scale", make_scaler(scale))]
    if pca is not None:
        steps.append(("pca", PCA(n_components=pca, random_state=seed)))
    steps.append(("clf", spec.make_estimator(seed).set_params(**(params or {}))))
    return Pipeline(steps)


_C_RULE = ValueRule("float", exclusive_minimum=0.0)
_C_HELP = "inverse regularisation strength C"
_DEFAULT_C = (0.0001, 0.001, 0.01, 0.1, 1.0)


def _linearsvc(seed: int) -> BaseEstimator:
    from sklearn.svm import LinearSVC

    return LinearSVC(dual="auto", max_iter=5000, random_state=seed)


def _logreg(seed: int) -> BaseEstimator:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=seed)


def _knn(seed: int) -> BaseEstimator:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier()


CLASSIFIERS: dict[str, ClassifierSpec] = {
    "linearsvc": ClassifierSpec(
        name="linearsvc",
        summary="LinearSVC, one-vs-rest squared hinge (exact float32 Newton search, liblinear refit)",
        make_estimator=_linearsvc,
        grid=(GridParam("C", "--C-grid", _C_RULE, _DEFAULT_C, _C_HELP),),
        searcher=search_linearsvc_path,
    ),
    "logreg": ClassifierSpec(
        name="logreg",
        summary="multinomial LogisticRegression, lbfgs",
        make_estimator=_logreg,
        grid=(GridParam("C", "--C-grid", _C_RULE, _DEFAULT_C, _C_HELP),),
        searcher=search_each,
    ),
    "knn": ClassifierSpec(
        name="knn",
        summary="k-nearest neighbours (one neighbour search per fold serves every k)",
        make_estimator=_knn,
        grid=(
            GridParam(
                "n_neighbors",
                "--k-grid",
                ValueRule("int", minimum=1),
                (1, 3, 5, 7, 11, 15, 21, 31),
                "number of neighbours k",
                at_most_rows=True,
            ),
            GridParam(
                "weights",
                "--vote",
                ValueRule("choice", choices=("uniform", "distance")),
                ("uniform", "distance"),
                "vote weighting",
                alias="vote",
            ),
            GridParam(
                "metric", "--metric", ValueRule("choice", choices=("euclidean", "cosine", "manhattan")), ("euclidean", "cosine"), "distance"
            ),
        ),
        searcher=search_knn,
    ),
}


def get_classifier(name: str) -> ClassifierSpec:
    """The registered classifier ``name``.

    Raises:
        UnknownNameError: not registered (the message names the closest ones).
    """
    return registry.lookup(CLASSIFIERS, name, kind="classifier")


def list_classifiers() -> list[str]:
    """Registered classifier names, sorted."""
    return sorted(CLASSIFIERS)


def classifier_label(clf: str, scale: Scale | str, pca: int | None) -> str:
    """The name of a classifier column in the comparison: ``logreg``, ``knn (l2)``, ``linearsvc (PCA 64)``.

    The standard scaling without PCA, the classic protocol, shows as the bare name.
    """
    extras = [] if Scale(scale) is Scale.STANDARD else [Scale(scale).value]
    if pca:
        extras.append(f"PCA {pca}")
    return f"{clf} ({', '.join(extras)})" if extras else clf

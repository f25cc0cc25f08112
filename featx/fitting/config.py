"""What a fit is asked for: the classifier, its grid and the protocol (all in the run key).

:class:`FitConfig` holds everything that changes the numbers of ``featx fit``; how the
work runs (``n_jobs``, the folders, ``skip_existing``) is given to :func:`featx.fit` as
keywords. It is a :class:`featx.core.schema.Config`: the Python API, pipeline files and
the CLI are all checked by the declarations below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, ValidationInfo, field_validator

from featx.core.errors import ConfigError
from featx.core.schema import Config, Invalid, PositiveInt, Seed, check, prepare
from featx.fitting.classifiers import ClassifierSpec, Scale, get_classifier, parse_scale
from featx.fitting.grids import GridValue


def _classifier(name: str) -> str:
    get_classifier(name)
    return name


class FitConfig(Config):
    """What to fit: the classifier, its grid and the cross-validation protocol.

    Attributes:
        clf: classifier name (see :func:`featx.fitting.classifiers.list_classifiers`).
        grid: parameter name -> values (a list, or a spec string such as
            ``"logspace:-4:0:5"``); parameters not given take the classifier's
            defaults. Once built: the full, checked grid (every parameter, sorted values).
        cv: number of stratified folds (>= 2).
        scale: ``standard``, ``l2`` or ``none``.
        pca: keep this many principal components before the estimator, or None.
        seed: seeds the folds, PCA and the estimator.
        solver: ``sklearn`` (scikit-learn's estimators, exactly GridSearchCV's scores),
            ``torch`` (every fold and grid point in batched solves on the device, reaching
            the same optimum; :mod:`featx.fitting.accelerated`), or ``auto`` (torch where it
            serves the classifier and is faster on the device, else sklearn).
        search: ``grid`` (every point of the grid) or ``random`` (``n_iter`` points drawn,
            seeded by ``seed``, log-uniformly between the smallest and largest value of
            each numeric grid parameter: :func:`featx.fitting.search.random_points`).
        n_iter: points a random search draws.

    Raises:
        ConfigError: any invalid value, naming its field (``grid.C``); an unknown
            classifier (an UnknownNameError) names the close ones.
    """

    clf: Annotated[str, check(_classifier)]
    grid: dict[str, tuple[GridValue, ...]] = Field(default_factory=dict, validate_default=True)
    cv: Annotated[int, Strict(), Field(ge=2)] = 5
    scale: Annotated[Scale, prepare(parse_scale)] = Scale.STANDARD
    pca: PositiveInt | None = None
    seed: Seed = 0
    solver: Literal["auto", "torch", "sklearn"] = "auto"
    search: Literal["grid", "random"] = "grid"
    n_iter: PositiveInt = 20

    @field_validator("grid", mode="before")
    @classmethod
    def _full_grid(cls, given: Any, info: ValidationInfo) -> dict[str, tuple[GridValue, ...]]:
        clf = info.data.get("clf")
        if clf is None:  # the classifier itself is wrong: that is the error to report
            return {}
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise Invalid(f"expected a mapping of parameter names to values, got {given!r}")
        try:
            return get_classifier(clf).resolve_grid(given)
        except ConfigError as error:  # its field is grid.<name>; the location here is grid already
            raise Invalid(type(error)(error.problem, field=error.field.removeprefix("grid."))) from None

    @property
    def spec(self) -> ClassifierSpec:
        return get_classifier(self.clf)

    @property
    def resolved_grid(self) -> dict[str, tuple[GridValue, ...]]:
        """The full grid (the ``grid`` field, which holds every parameter once built)."""
        return self.grid

    def identity(self, features: str) -> dict[str, Any]:
        """What the run key hashes: the features (their content key, what they are) and
        everything that changes the numbers.

        The solver counts once resolved (``auto`` is resolved first, see
        :func:`featx.fitting.protocol.plan_run`); scikit-learn's, the original one, adds
        nothing, so records written before solvers existed keep their keys; so does a
        grid search (a random one adds its name and ``n_iter``).
        """
        solver = {} if self.solver == "sklearn" else {"solver": self.solver}
        search = {"search": "random", "n_iter": self.n_iter} if self.search == "random" else {}
        return {
            **solver,
            **search,
            "features": features,
            "clf": self.clf,
            "estimator_params": self.spec.fixed_params(self.seed, swept=list(self.grid)),
            "grid": {name: list(values) for name, values in self.grid.items()},
            "cv": self.cv,
            "scale": Scale(self.scale).value,
            "pca": self.pca,
            "seed": self.seed,
        }


def check_n_jobs(n_jobs: object) -> int:
    """``n_jobs`` as joblib takes it: a whole number, never 0 (-1: every core, -2: all but one).

    Raises:
        ConfigError: naming the field ``n_jobs``.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int):
        raise ConfigError(f"expected a whole number, got {n_jobs!r}", field="n_jobs")
    if n_jobs == 0:
        raise ConfigError("must not be 0; use a positive count or -1 for all cores", field="n_jobs")
    return n_jobs

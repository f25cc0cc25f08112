"""Grid specifications: the text a user types for a hyper-parameter sweep, parsed and checked.

Three kinds of values, each with one parser:

* numbers, ``"0.001,0.01,0.1"`` or ``"logspace:LO:HI:N"`` (N values from 10**LO to 10**HI),
  e.g. the C of a linear model: :func:`parse_float_grid`;
* whole numbers, ``"1,3,5,11"``, e.g. k of k-NN: :func:`parse_int_grid`;
* names from a fixed set, ``"uniform,distance"``: :func:`parse_choice_grid`;
* any other parameter of the estimator, ``"100,1000"``, ``"l1,l2"``, ``"balanced,None"``
  (each item read as a whole number, a number, true/false, None or else a name; scikit-
  learn's own parameter constraints check them): :func:`parse_any_grid`.

Numeric grids are returned sorted and without repeats (so a path of C values is walked in
one direction and the record reads in order); choices keep the order given. Python values
(lists of numbers or names, from the API) go through :func:`normalize_values` with the
same checks. Every problem is a :class:`featx.core.errors.ConfigError` that quotes the spec.
Every error names the config field (``grid.C``); the CLI shows its flag instead. Negative
numbers look like options to click: write ``--C-grid=-1,2``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from featx.core.errors import ConfigError

GridValue = float | int | str | bool | None
ValueKind = Literal["float", "int", "choice", "any"]

MAX_GRID_SIZE = 1000
LOGSPACE = "logspace"
#: the largest |LO| or |HI| of a logspace: 10**300 is still a float64 (10**309 is not)
MAX_EXPONENT = 300


@dataclass(frozen=True)
class ValueRule:
    """What a grid's values must be.

    Attributes:
        kind: ``float``, ``int`` or ``choice``.
        minimum: smallest allowed number (inclusive), or None.
        exclusive_minimum: numbers must be strictly greater than this, or None.
        choices: the allowed names of a ``choice`` grid.
    """

    kind: ValueKind
    minimum: float | None = None
    exclusive_minimum: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """A short phrase for help texts and errors: 'numbers > 0', 'one of a, b'."""
        if self.kind == "choice":
            return "names from " + ", ".join(self.choices)
        if self.kind == "any":
            return "values the estimator accepts"
        noun = "whole numbers" if self.kind == "int" else "numbers"
        if self.exclusive_minimum is not None:
            return f"{noun} > {self.exclusive_minimum:g}"
        if self.minimum is not None:
            return f"{noun} >= {self.minimum:g}"
        return noun


def _error(field: str, spec: str, problem: str, rule: ValueRule) -> ConfigError:
    if rule.kind == "float":
        how = "a comma list like 0.01,0.1,1 or logspace:LO:HI:N"
    elif rule.kind == "int":
        how = "a comma list like 1,3,5"
    elif rule.kind == "any":
        how = "a comma list of values the estimator accepts, like 100,1000 or l1,l2"
    else:
        how = "a comma list of " + ", ".join(rule.choices)
    return ConfigError(f"bad value {spec!r}: {problem}; use {how}", field=field)


def _check_number(value: float, field: str, spec: str, rule: ValueRule) -> None:
    if not math.isfinite(value):
        raise _error(field, spec, f"{value} is not a finite number", rule)
    if rule.exclusive_minimum is not None and not value > rule.exclusive_minimum:
        raise _error(field, spec, f"{value:g} is not > {rule.exclusive_minimum:g}", rule)
    if rule.minimum is not None and value < rule.minimum:
        raise _error(field, spec, f"{value:g} is below the minimum {rule.minimum:g}", rule)


def _items(spec: str, field: str, rule: ValueRule) -> list[str]:
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or any(not item for item in items):
        raise _error(field, spec, "empty value", rule)
    return items


def _finish_numbers(values: Iterable[float], field: str, spec: str, rule: ValueRule) -> tuple[float, ...] | tuple[int, ...]:
    unique = sorted(set(values))
    if len(unique) > MAX_GRID_SIZE:
        raise _error(field, spec, f"{len(unique)} values is more than {MAX_GRID_SIZE}", rule)
    for value in unique:
        _check_number(value, field, spec, rule)
    if rule.kind == "int":
        return tuple(int(v) for v in unique)
    return tuple(float(v) for v in unique)


def _logspace(spec: str, field: str, rule: ValueRule) -> list[float]:
    parts = spec.split(":")
    if len(parts) != 4:
        raise _error(field, spec, "logspace needs three fields, logspace:LO:HI:N", rule)
    try:
        low, high = float(parts[1]), float(parts[2])
        count = int(parts[3])
    except ValueError:
        raise _error(field, spec, "LO and HI must be numbers and N a whole number", rule) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise _error(field, spec, "LO and HI must be finite", rule)
    if max(abs(low), abs(high)) > MAX_EXPONENT:
        raise _error(field, spec, f"LO and HI must be between -{MAX_EXPONENT} and {MAX_EXPONENT} (10**LO and 10**HI must be floats)", rule)
    if not 1 <= count <= MAX_GRID_SIZE:
        raise _error(field, spec, f"N must be between 1 and {MAX_GRID_SIZE}", rule)
    if count > 1 and low == high:
        raise _error(field, spec, "LO equals HI, so the N values would all be the same", rule)
    return [float(v) for v in np.logspace(low, high, count)]


def parse_float_grid(spec: str, *, field: str = "grid.C", rule: ValueRule = ValueRule("float", exclusive_minimum=0.0)) -> tuple[float, ...]:
    """Parse ``"a,b,c"`` or ``"logspace:LO:HI:N"`` into sorted distinct floats.

    Args:
        spec: the text the user gave.
        field: the config field the values are for (``grid.C``), named by the error.
        rule: what the values must be (default: positive, as for a C grid).

    Returns:
        The values, ascending, without repeats.

    Raises:
        ConfigError: bad syntax, not a number, not finite, or out of range.
    """
    text = spec.strip()
    if text.lower().startswith(LOGSPACE + ":"):
        values = _logspace(text, field, rule)
    else:
        values = []
        for item in _items(text, field, rule):
            try:
                values.append(float(item))
            except ValueError:
                raise _error(field, spec, f"{item!r} is not a number", rule) from None
    return tuple(float(v) for v in _finish_numbers(values, field, spec, rule))


def parse_int_grid(spec: str, *, field: str = "grid.n_neighbors", rule: ValueRule = ValueRule("int", minimum=1)) -> tuple[int, ...]:
    """Parse ``"1,3,5"`` into sorted distinct integers.

    Raises:
        ConfigError: bad syntax, not a whole number, or below the minimum.
    """
    values = []
    for item in _items(spec.strip(), field, rule):
        try:
            values.append(int(item))
        except ValueError:
            raise _error(field, spec, f"{item!r} is not a whole number", rule) from None
    return _finish_numbers(values, field, spec, rule)  # type: ignore[return-value]


def parse_choice_grid(spec: str, *, field: str, rule: ValueRule) -> tuple[str, ...]:
    """Parse ``"a,b"`` into names from ``rule.choices`` (order kept, repeats dropped).

    Raises:
        ConfigError: empty item or a name outside the choices.
    """
    values: list[str] = []
    for item in _items(spec.strip(), field, rule):
        name = item.lower()
        if name not in rule.choices:
            raise _error(field, spec, f"{item!r} is not one of {', '.join(rule.choices)}", rule)
        if name not in values:
            values.append(name)
    return tuple(values)


#: how ``parse_any_grid`` reads words that are not numbers
_LITERALS: dict[str, GridValue] = {"none": None, "true": True, "false": False}


def parse_any_grid(spec: str, *, field: str) -> tuple[GridValue, ...]:
    """Parse ``"a,b"`` for a parameter featx has no rule for: each item a whole number, a
    number, true/false, None, or else the name itself (order kept, repeats dropped). The
    values are checked against the estimator's own constraints by the caller.

    Raises:
        ConfigError: an empty item.
    """
    values: list[GridValue] = []
    for item in _items(spec.strip(), field, ValueRule("any")):
        value: GridValue
        if item.lower() in _LITERALS:
            value = _LITERALS[item.lower()]
        else:
            try:
                value = int(item)
            except ValueError:
                try:
                    value = float(item)
                except ValueError:
                    value = item
        values.append(value)
    return _distinct(values)


def _distinct(values: Iterable[GridValue]) -> tuple[GridValue, ...]:
    """``values`` in order without repeats (``1``, ``1.0`` and ``True`` stay apart)."""
    kept: list[GridValue] = []
    for value in values:
        if not any(value == v and type(value) is type(v) for v in kept):
            kept.append(value)
    return tuple(kept)


def parse_grid(spec: str, *, field: str, rule: ValueRule) -> tuple[GridValue, ...]:
    """Parse a spec according to ``rule.kind`` (see the four parsers)."""
    if rule.kind == "any":
        return parse_any_grid(spec, field=field)
    if rule.kind == "float":
        return parse_float_grid(spec, field=field, rule=rule)
    if rule.kind == "int":
        return parse_int_grid(spec, field=field, rule=rule)
    return parse_choice_grid(spec, field=field, rule=rule)


def normalize_values(values: str | Sequence[object], *, field: str, rule: ValueRule) -> tuple[GridValue, ...]:
    """Check grid values given from Python (a spec string, or a list) the same way as text.

    Raises:
        ConfigError: a value of the wrong type or out of range, or an empty list.
    """
    if isinstance(values, str):
        return parse_grid(values, field=field, rule=rule)
    items = list(values) if isinstance(values, Iterable) else [values]
    spec = ",".join(str(v) for v in items)
    if not items:
        raise _error(field, "", "empty value", rule)
    if rule.kind == "any":
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in items):
            raise _error(field, spec, "values must be numbers, names, true/false or None", rule)
        return _distinct(items)  # type: ignore[arg-type]
    if rule.kind == "choice":
        if not all(isinstance(v, str) for v in items):
            raise _error(field, spec, "values must be names", rule)
        return parse_choice_grid(spec, field=field, rule=rule)
    converted: list[float] = []
    for value in items:
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
            raise _error(field, spec, f"{value!r} is not a {'whole number' if rule.kind == 'int' else 'number'}", rule)
        if rule.kind == "int" and float(value) != int(value):
            raise _error(field, spec, f"{value!r} is not a whole number", rule)
        converted.append(float(value))
    return _finish_numbers(converted, field, spec, rule)


def as_number(value: GridValue) -> float:
    """A numeric grid value (of a ``float`` or ``int`` rule) as a float.

    Raises:
        TypeError: not a number (a name, true/false or None).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def format_value(value: GridValue) -> str:
    """One value as a user would type it, exactly: ``0.001``, ``3.16228e-05`` only if exact."""
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def format_values(values: Sequence[GridValue]) -> str:
    """Values as a user would type them: ``0.001,0.01`` / ``1,3,5`` / ``uniform,distance``."""
    return ",".join(format_value(v) for v in values)


def format_spec(values: Sequence[GridValue]) -> str:
    """Values as the shortest spec that parses back to exactly them: ``logspace:-6:0:13`` when
    they are that logspace (whole-number exponents), else :func:`format_values`."""
    count = len(values)
    numbers = [v for v in values if isinstance(v, float) and v > 0]
    if count > 4 and len(numbers) == count:
        low, high = math.log10(numbers[0]), math.log10(numbers[-1])
        if low == round(low) and high == round(high):
            spec = f"{LOGSPACE}:{round(low)}:{round(high)}:{count}"
            if list(np.logspace(round(low), round(high), count)) == list(values):
                return spec
    return format_values(values)


def format_short(value: GridValue) -> str:
    """One value for reading, not for typing: floats to 3 significant digits (``3.16e-05``)."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def format_point(point: Mapping[str, GridValue], *, short: bool = False) -> str:
    """A grid point as ``C=0.01`` / ``metric=cosine, n_neighbors=5, vote=distance``
    (``short``: floats to 3 significant digits, for reading)."""
    fmt = format_short if short else format_value
    return ", ".join(f"{name}={fmt(value)}" for name, value in point.items())

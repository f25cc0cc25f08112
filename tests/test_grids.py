"""Grid specs: the syntax users type, and the clear errors for everything else."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featx.core.errors import ConfigError
from featx.fitting.grids import (
    ValueRule,
    format_point,
    format_short,
    format_spec,
    format_values,
    normalize_values,
    parse_choice_grid,
    parse_float_grid,
    parse_int_grid,
)

WEIGHTS = ValueRule("choice", choices=("uniform", "distance"))


def test_float_list_is_sorted_and_deduplicated() -> None:
    assert parse_float_grid("1, 0.01,0.1,0.01") == (0.01, 0.1, 1.0)


def test_logspace_matches_numpy() -> None:
    values = parse_float_grid("logspace:-4:2:13")
    assert len(values) == 13
    np.testing.assert_allclose(values, np.logspace(-4, 2, 13))
    assert parse_float_grid("LOGSPACE:0:0:1") == (1.0,)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty value"),
        ("0.1,,1", "empty value"),
        ("0.1,abc", "'abc' is not a number"),
        ("0,1", "0 is not > 0"),
        ("-1,2", "-1 is not > 0"),
        ("nan", "not a finite number"),
        ("inf", "not a finite number"),
        ("logspace:-4:2", "three fields"),
        ("logspace:a:2:5", "must be numbers"),
        ("logspace:-4:2:0", "N must be between"),
        ("logspace:1:1:3", "would all be the same"),
        ("logspace:-400:-390:3", "must be between -300 and 300"),
        ("logspace:0:1000:3", "must be between -300 and 300"),
    ],
)
def test_bad_c_grids_are_one_clear_error(spec: str, message: str) -> None:
    with warnings.catch_warnings(), pytest.raises(ConfigError, match=message) as error:
        warnings.simplefilter("error")  # no numpy overflow warning on the way to the error
        parse_float_grid(spec, field="grid.C")
    text = str(error.value)
    assert text.startswith("grid.C: bad value") and "\n" not in text and "logspace:LO:HI:N" in text


def test_int_grid() -> None:
    assert parse_int_grid("21,1,3,3") == (1, 3, 21)
    with pytest.raises(ConfigError, match="'2.5' is not a whole number"):
        parse_int_grid("1,2.5")
    with pytest.raises(ConfigError, match="below the minimum 1"):
        parse_int_grid("0,1")


def test_choice_grid_keeps_order_and_rejects_unknown() -> None:
    assert parse_choice_grid("distance,Uniform,distance", field="grid.weights", rule=WEIGHTS) == ("distance", "uniform")
    with pytest.raises(ConfigError, match="'nearest' is not one of uniform, distance"):
        parse_choice_grid("nearest", field="grid.weights", rule=WEIGHTS)


def test_python_values_get_the_same_checks() -> None:
    rule = ValueRule("float", exclusive_minimum=0.0)
    assert normalize_values([1, 0.1], field="grid.C", rule=rule) == (0.1, 1.0)
    assert normalize_values("logspace:0:1:2", field="grid.C", rule=rule) == (1.0, 10.0)
    for bad in ([], [0.0], ["a"], [True], [float("nan")]):
        with pytest.raises(ConfigError):
            normalize_values(bad, field="grid.C", rule=rule)
    with pytest.raises(ConfigError, match="whole number"):
        normalize_values([1.5], field="grid.n_neighbors", rule=ValueRule("int", minimum=1))
    assert normalize_values([np.int64(3), 1.0], field="grid.n_neighbors", rule=ValueRule("int", minimum=1)) == (1, 3)


@given(st.lists(st.floats(min_value=1e-6, max_value=1e6, allow_nan=False), min_size=1, max_size=20))
def test_formatted_grid_parses_back(values: list[float]) -> None:
    parsed = parse_float_grid(",".join(repr(v) for v in values))
    assert parsed == tuple(sorted(set(values)))
    assert parse_float_grid(format_values(parsed)) == parsed


@given(st.lists(st.floats(min_value=1e-6, max_value=1e6, allow_nan=False), min_size=1, max_size=20))
def test_shortest_spec_parses_back(values: list[float]) -> None:
    parsed = parse_float_grid(",".join(repr(v) for v in values))
    assert parse_float_grid(format_spec(parsed)) == parsed


def test_a_logspace_grid_is_written_as_one() -> None:
    assert format_spec(parse_float_grid("logspace:-6:0:13")) == "logspace:-6:0:13"
    assert format_spec(parse_float_grid("0.001,0.01,0.1")) == "0.001,0.01,0.1"  # short lists stay lists
    assert format_spec((1, 3, 5, 7, 11)) == "1,3,5,7,11" and format_spec(("uniform", "distance")) == "uniform,distance"
    assert format_short(3.1622776601683795e-05) == "3.16e-05" and format_short(1.0) == "1" and format_short(5) == "5"
    assert format_point({"C": 0.31622776601683794, "weights": "distance"}, short=True) == "C=0.316, weights=distance"

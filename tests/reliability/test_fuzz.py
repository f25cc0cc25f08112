"""Property tests of what a user types: grid specs, pipeline files and data set specs
either parse into something valid or raise a featx error (one line for the CLI); no
other exception, whatever the input."""

from __future__ import annotations

import math
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featx.core.errors import FeatxError
from featx.fitting.grids import ValueRule, parse_float_grid, parse_int_grid
from featx.runner.spec import TOP_LEVEL_KEYS, load_pipeline, parse_pipeline

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

grid_text = st.one_of(
    st.text(alphabet="0123456789,.:-+eE infaNlogspace ", max_size=24),
    st.builds(lambda a, b, n: f"logspace:{a}:{b}:{n}", st.integers(-400, 400), st.integers(-400, 400), st.integers(-3, 60)),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5).map(lambda xs: ",".join(map(str, xs))),
    st.text(max_size=12),
)


@FUZZ
@given(grid_text)
def test_a_float_grid_parses_to_positive_sorted_values_or_raises_a_featx_error(spec: str) -> None:
    try:
        values = parse_float_grid(spec)
    except FeatxError:
        return
    assert values and list(values) == sorted(set(values))
    assert all(math.isfinite(v) and v > 0 for v in values)


@FUZZ
@given(grid_text)
def test_an_int_grid_parses_to_sorted_whole_numbers_or_raises_a_featx_error(spec: str) -> None:
    try:
        values = parse_int_grid(spec, rule=ValueRule("int", minimum=1))
    except FeatxError:
        return
    assert values and list(values) == sorted(set(values)) and all(isinstance(v, int) and v >= 1 for v in values)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.floats(allow_nan=True),
    st.text(max_size=10),
    st.sampled_from(
        [
            "test_resnet",
            "resnet18",
            "logreg",
            "knn",
            "linearsvc",
            "digits",
            "imagefolder:",
            "cifar10",
            "logspace:-2:0:3",
            "1,2",
            "standard",
            "l2",
            "random",
            "cuda",
            "fp16",
        ]
    ),
)
keys = st.one_of(
    st.sampled_from(
        [
            *TOP_LEVEL_KEYS,
            "name",
            "grid",
            "C",
            "n_neighbors",
            "image_size",
            "batch_size",
            "cv",
            "scale",
            "pca",
            "weights",
            "limit",
            "per_class",
            "seed",
            "device",
        ]
    ),
    st.text(max_size=8),
)
documents = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)), max_leaves=12
)
pipelines = st.one_of(
    documents,
    st.fixed_dictionaries(
        {"backbones": documents, "classifiers": documents},
        optional={k: documents for k in TOP_LEVEL_KEYS if k not in ("backbones", "classifiers")},
    ),
)


@FUZZ
@given(pipelines)
def test_a_pipeline_document_parses_or_raises_a_featx_error(data: object) -> None:
    try:
        spec = parse_pipeline(data, name="fuzz")
    except FeatxError:
        return
    assert spec.backbones and spec.classifiers


@FUZZ
@given(st.one_of(st.text(max_size=60), pipelines.map(lambda d: yaml.safe_dump(d, allow_unicode=True))))
def test_a_pipeline_file_loads_or_raises_a_featx_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_pipeline(path)
    except FeatxError:
        pass


@FUZZ
@given(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(["digits", "cifar10", "mnist", "fashion-mnist", "cifar100", "imagefolder"]).flatmap(
            lambda kind: st.text(alphabet="abc:/. ", max_size=8).map(lambda rest: kind + rest)
        ),
    )
)
def test_a_dataset_spec_loads_or_raises_a_featx_error(tmp_path: Path, spec: str) -> None:
    from featx.extraction.datasets import load_dataset, parse_spec

    try:
        kind, argument = parse_spec(spec)
    except FeatxError:
        return
    if argument is not None:  # keep every path the fuzzer makes up inside the test's folder
        spec = f"{kind}:{tmp_path / argument.lstrip('/')}"
    try:
        dataset = load_dataset(spec, data_dir=tmp_path / "data", download=False, limit=5)
    except FeatxError:
        return
    assert dataset.splits["train"] is not None

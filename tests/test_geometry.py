"""timm's eval geometry (resize edge, crop or pad) for arbitrary image and input sizes.

A property test: skipped where hypothesis is not installed (the GPU machine's python).
"""

from __future__ import annotations

import pytest
from PIL import Image

from featx.extraction.dataconfig import CROP_MODES, DataConfig, plan_geometry
from tests.test_preprocess import IMAGENET, reference

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from timm.data import create_transform  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(4, 400),
    width=st.integers(4, 400),
    out=st.tuples(st.integers(8, 96), st.integers(8, 96)),
    crop_pct=st.sampled_from([0.75, 0.875, 0.9, 0.95, 1.0, 1.15]),
    crop_mode=st.sampled_from(CROP_MODES),
)
def test_geometry_gives_timm_s_output_size(height: int, width: int, out: tuple[int, int], crop_pct: float, crop_mode: str) -> None:
    assume(max(height, width) <= 8 * min(height, width))  # timm's own transform fails on slivers
    config = DataConfig((3, *out), "bilinear", *IMAGENET, crop_pct, crop_mode)
    geometry = plan_geometry(height, width, config)
    image = Image.new("RGB", (width, height))
    assert tuple(reference(image, config).shape[1:]) == geometry.out == out
    first_step = create_transform(**config.timm_kwargs()).transforms[0]  # timm's Resize / ResizeKeepRatio
    assert first_step(image).size == (geometry.resize[1], geometry.resize[0])

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from imagegate.domain.diffusers_options import DiffusersOptions
from imagegate.domain.sizes import ASPECT_RATIOS, output_size

CONTRACT_SIZES = [
    output_size(aspect, resolution)
    for aspect in ASPECT_RATIOS
    if aspect != "auto"
    for resolution in ("1k", "2k")
]


@given(
    size=st.sampled_from(CONTRACT_SIZES),
    pixels=st.integers(min_value=64, max_value=4_000_000),
)
def test_render_pixels_keeps_the_area_whatever_the_resolution(
    size: tuple[int, int], pixels: int
) -> None:
    width, height = size
    fraction = DiffusersOptions(source="x", render_pixels=pixels).render_fraction(width, height)
    assert 0 < fraction <= 1
    rendered = width * fraction * height * fraction
    if pixels < width * height:
        assert math.isclose(rendered, pixels, rel_tol=1e-9)
    else:  # never larger than the delivered image
        assert fraction == 1


@given(size=st.sampled_from(CONTRACT_SIZES), scale=st.floats(min_value=0.01, max_value=1))
def test_render_scale_is_the_fraction_at_every_size(size: tuple[int, int], scale: float) -> None:
    assert DiffusersOptions(source="x", render_scale=scale).render_fraction(*size) == scale


def test_render_scale_and_render_pixels_exclude_each_other() -> None:
    with pytest.raises(ValidationError, match="render_scale or render_pixels, not both"):
        DiffusersOptions(source="x", render_scale=0.5, render_pixels=4096)

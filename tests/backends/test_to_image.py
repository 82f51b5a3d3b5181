"""A pipeline's float output to the delivered image: the rounding diffusers itself does,
and a refusal of NaN or all-black outputs wherever in the image they are."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from imagegate.backends.base import GenerationInput
from imagegate.backends.diffusers.rendering import BadOutputError, Row, _to_image

ROW = Row(GenerationInput(task="text-to-image", prompt="p", n=1, width=8, height=8, seed=7), 0)


def outputs(**floats: Any) -> st.SearchStrategy[np.ndarray[Any, Any]]:
    shapes = st.tuples(st.integers(1, 8), st.integers(1, 8), st.sampled_from([3, 4]))
    return hnp.arrays(np.float32, shapes, elements=st.floats(width=32, **floats))


@given(outputs(min_value=-1.0, max_value=2.0))
def test_pixels_are_clipped_scaled_and_rounded_as_diffusers_does(
    array: np.ndarray[Any, Any],
) -> None:
    expected = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    height, width = array.shape[:2]
    if expected.max() <= 1:
        with pytest.raises(BadOutputError, match="all-black"):
            _to_image(array, ROW, width, height)
        return
    image = _to_image(array, ROW, width, height)
    assert (image.mode, image.size) == ("RGB", (width, height))
    assert np.array_equal(np.asarray(image), expected[..., :3])


@given(outputs(min_value=0.0, max_value=1.0), st.data())
def test_one_nan_anywhere_fails_the_image(array: np.ndarray[Any, Any], data: st.DataObject) -> None:
    where = tuple(data.draw(st.integers(0, side - 1)) for side in array.shape)
    array[where] = np.nan
    height, width = array.shape[:2]
    with pytest.raises(BadOutputError, match="NaN pixels for image 1 of the job"):
        _to_image(array, ROW, width, height)

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate.domain.sizes import ASPECT_RATIOS, output_size, snap_aspect

CONTRACT = {
    "16:9": ((1360, 768), (2720, 1536)),
    "9:16": ((768, 1360), (1536, 2720)),
    "1:1": ((1024, 1024), (2048, 2048)),
    "4:3": ((1152, 864), (2304, 1728)),
    "3:4": ((864, 1152), (1728, 2304)),
    "3:2": ((1248, 832), (2496, 1664)),
    "2:3": ((832, 1248), (1664, 2496)),
    "2:1": ((1440, 720), (2880, 1440)),
}


@pytest.mark.parametrize("aspect", list(CONTRACT))
def test_every_row_of_the_size_table(aspect: str) -> None:
    assert output_size(aspect, "1k") == CONTRACT[aspect][0]
    assert output_size(aspect, "2k") == CONTRACT[aspect][1]


def test_auto_without_reference_is_square() -> None:
    assert output_size("auto", "1k") == (1024, 1024)


@pytest.mark.parametrize(
    ("reference", "aspect"),
    [
        ((1920, 1080), "16:9"),
        ((1080, 1920), "9:16"),
        ((500, 500), "1:1"),
        ((3000, 1000), "2:1"),
        ((1000, 800), "4:3"),
        ((800, 1210), "2:3"),
    ],
)
def test_auto_snaps_to_the_nearest_ratio(reference: tuple[int, int], aspect: str) -> None:
    assert snap_aspect(*reference) == aspect
    assert output_size("auto", "1k", reference) == CONTRACT[aspect][0]


@given(st.integers(1, 10_000), st.integers(1, 10_000), st.sampled_from(["1k", "2k"]))
def test_auto_always_gives_a_row_of_the_table(width: int, height: int, resolution: str) -> None:
    size = output_size("auto", resolution, (width, height))
    index = 0 if resolution == "1k" else 1
    assert size in {rows[index] for rows in CONTRACT.values()}
    # Landscape references never give portrait outputs and vice versa.
    if width > height * 1.2:
        assert size[0] > size[1]
    if height > width * 1.2:
        assert size[1] > size[0]


@given(st.sampled_from(ASPECT_RATIOS))
def test_exact_ratios_snap_to_themselves(aspect: str) -> None:
    width, height = CONTRACT[aspect][0]
    assert snap_aspect(width, height) == aspect

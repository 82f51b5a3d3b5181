"""Output sizes of the contract (SPEC §1): aspect ratio x resolution -> width x height."""

from __future__ import annotations

import math

ASPECT_RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "2:1")
AUTO = "auto"
RESOLUTIONS: tuple[str, ...] = ("1k", "2k")

SIZES_1K: dict[str, tuple[int, int]] = {
    "16:9": (1360, 768),
    "9:16": (768, 1360),
    "1:1": (1024, 1024),
    "4:3": (1152, 864),
    "3:4": (864, 1152),
    "3:2": (1248, 832),
    "2:3": (832, 1248),
    "2:1": (1440, 720),
}


def _ratio(aspect: str) -> float:
    w, h = aspect.split(":")
    return int(w) / int(h)


def snap_aspect(width: int, height: int) -> str:
    """The table's ratio nearest to ``width/height``, compared on a log scale so that
    2:1 and 1:2 are equally far from 1:1."""
    target = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda a: abs(math.log(_ratio(a)) - target))


def output_size(
    aspect_ratio: str, resolution: str, first_reference: tuple[int, int] | None = None
) -> tuple[int, int]:
    if aspect_ratio == AUTO:
        aspect_ratio = snap_aspect(*first_reference) if first_reference else "1:1"
    width, height = SIZES_1K[aspect_ratio]
    scale = 2 if resolution == "2k" else 1
    return width * scale, height * scale

"""Registry entries that point at the tiny pipelines of tests/conftest.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagegate.domain.registry import RouteSpec

# A tiny UNet at the contract's full 1360x768 takes minutes on a CPU; at 1/16 it renders
# 80x48 (FLUX: 80x48 too, sides rounded to 16) and the backend upscales to the full size.
TINY_OPTIONS: dict[str, Any] = {"steps": 2, "render_scale": 0.0625}


def diffusers_spec(
    source: Path | str,
    route: str = "tiny/sd",
    *,
    max_batch: int = 1,
    tasks: tuple[str, ...] = ("text-to-image", "image-to-image"),
    **options: Any,
) -> RouteSpec:
    return RouteSpec(
        route=route,
        backend="diffusers",
        tasks=tasks,
        max_batch=max_batch,
        options={"source": str(source), **TINY_OPTIONS, **options},
    )

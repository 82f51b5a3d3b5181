"""Tiny random-weight pipelines saved once per test process, and registry entries that
point at them (offline: tests/conftest.py sets HF_HUB_OFFLINE=1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagegate.domain.registry import RouteSpec
from imagegate.testing.tiny_pipelines import save_tiny_flux, save_tiny_sd

# A tiny UNet at the contract's full 1360x768 takes minutes on a CPU; at 1/16 it renders
# 80x48 (FLUX: 80x48 too, sides rounded to 16) and the backend upscales to the full size.
TINY_OPTIONS: dict[str, Any] = {"steps": 2, "render_scale": 0.0625}


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_flux(tmp_path_factory.mktemp("tiny-flux"))


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

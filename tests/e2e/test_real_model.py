"""A real ``imagegate serve`` with its model process (spawn) serving a tiny Stable
Diffusion pipeline from a directory named in a registry file, offline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import ServerFactory, ServerProcess, sync_images

pytestmark = pytest.mark.e2e


def models(source: Path) -> str:
    return f"""\
[models."kwaivgi/kling-image-o1"]
backend = "diffusers"
source = "{source}"
tasks = ["text-to-image", "image-to-image"]
steps = 2
render_scale = 0.0625
warm = true
"""


def generate(server: ServerProcess, body: dict[str, Any]) -> list[np.ndarray[Any, Any]]:
    return [np.asarray(image.convert("RGB")) for image in sync_images(server, body)]


def test_a_saved_pipeline_is_served_by_the_model_process(
    make_server: ServerFactory, tiny_sd: Path
) -> None:
    server = make_server(models=models(tiny_sd), env={"HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 60
    while "loaded model kwaivgi/kling-image-o1" not in server.log_text():
        assert time.monotonic() < deadline, server.log_text()  # warm = true loads at start
        time.sleep(0.1)
    body = {"prompt": "a red horse", "aspect_ratio": "9:16", "n": 2, "seed": 5}
    first = generate(server, body)
    assert [array.shape for array in first] == [(1360, 768, 3), (1360, 768, 3)]
    again = generate(server, body)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other = generate(server, {**body, "seed": 6})
    assert not np.array_equal(first[0], other[0])
    assert server.log_problems() == []

"""`imagegate serve` on the registry it ships (the README's first command), offline: the
route answers with images that follow the prompt, drawn by the bundled shapes model."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.domain.registry import default_registry_path
from imagegate.training.judge import judge
from tests.e2e.conftest import ServerFactory, ServerProcess

pytestmark = pytest.mark.e2e


def images(server: ServerProcess, body: dict[str, Any]) -> list[Image.Image]:
    response = httpx.post(
        f"{server.url}/api/v3/kwaivgi/kling-image-o1/text-to-image",
        json={**body, "enable_sync_mode": True},
        headers=server.auth,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "completed", data
    return [Image.open(io.BytesIO(httpx.get(url, timeout=10).content)) for url in data["outputs"]]


def test_the_shipped_registry_draws_what_the_prompt_asks_for(make_server: ServerFactory) -> None:
    server = make_server(
        models=default_registry_path().read_text(encoding="utf-8"), env={"HF_HUB_OFFLINE": "1"}
    )
    deadline = time.monotonic() + 120
    while "loaded model kwaivgi/kling-image-o1" not in server.log_text():
        assert time.monotonic() < deadline, server.log_text()  # the entry is warm
        time.sleep(0.1)
    asks = [
        {"prompt": "a red circle", "aspect_ratio": "1:1", "seed": 3},
        {"prompt": "a blue square", "aspect_ratio": "1:1", "seed": 4},
    ]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda body: images(server, body), asks))
    for ask, [image] in zip(asks, answers, strict=True):
        assert image.size == (1024, 1024)
        [verdict] = judge(image, ask["prompt"]).objects
        assert (verdict.colour, verdict.shape) == (True, True), ask
    [default] = images(server, {"prompt": "a green triangle", "seed": 1})
    assert (default.size, default.format) == ((1360, 768), "PNG")
    assert server.log_problems() == []

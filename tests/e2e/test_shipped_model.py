"""`imagegate serve` on the registry it ships (the README's first command), offline: the
route answers with images in the prompt's colours, drawn by the bundled shapes model."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from imagegate.domain.registry import default_registry_path
from imagegate.training.judge import detect
from tests.e2e.conftest import ServerFactory, sync_images

pytestmark = pytest.mark.e2e


def test_the_shipped_registry_draws_in_the_colour_the_prompt_asks_for(
    make_server: ServerFactory,
) -> None:
    server = make_server(
        models=default_registry_path().read_text(encoding="utf-8"),
        # Beside another test worker on two cores, torch's spinning threads slowed a 0.7 s
        # job to 44 s (seen in CI): one thread, and room for a loaded machine.
        env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "IMAGEGATE_SYNC_MODE_TIMEOUT": "300"},
    )
    deadline = time.monotonic() + 120
    while "loaded model kwaivgi/kling-image-o1" not in server.log_text():
        assert time.monotonic() < deadline, server.log_text()  # the entry is warm
        time.sleep(0.1)
    asks = [
        {"prompt": "a red circle", "aspect_ratio": "1:1", "seed": 3, "n": 4},
        {"prompt": "a blue square", "aspect_ratio": "1:1", "seed": 4, "n": 4},
    ]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda body: sync_images(server, body, timeout=310), asks))
    for ask, images in zip(asks, answers, strict=True):
        assert [image.size for image in images] == [(1024, 1024)] * 4
        colours = [detect(image).objects[0].colour for image in images]
        # most, not all: the small model draws blue as cyan in about 1 seed of 20
        assert colours.count(ask["prompt"].split()[1]) >= 3, (ask, colours)
    [default] = sync_images(server, {"prompt": "a green triangle", "seed": 1}, timeout=310)
    assert (default.size, default.format) == ((1360, 768), "PNG")
    assert server.log_problems() == []

"""Tiny real pipelines named in a registry file and served over the API by the in-process
worker: sizes, n, seeds, references, progress, cancellation, batching, failures."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from PIL import Image

from imagegate.settings import Settings
from tests.conftest import Api

pytestmark = pytest.mark.anyio

FAULTY = "tests.backends.pipelines:FaultyPipeline"


def registry(tiny_sd: Path, broken: Path) -> str:
    common = 'tasks = ["text-to-image", "image-to-image"]\nrender_scale = 0.0625\n'
    return f"""
[models."tiny/sd"]
backend = "diffusers"
source = "{tiny_sd}"
steps = 2
max_batch = 4
{common}
[models."tiny/slow"]
backend = "diffusers"
source = "{tiny_sd}"
steps = 500
{common}
[models."tiny/faulty"]
backend = "diffusers"
source = "{tiny_sd}"
pipeline = "{FAULTY}"
steps = 2
{common}
[models."tiny/broken"]
backend = "diffusers"
source = "{broken}"
{common}
[models."mock/slow"]
backend = "mock"
tasks = ["text-to-image"]
delay_ms = 1200
"""


@pytest.fixture
def settings(settings: Settings, tiny_sd: Path, tmp_path: Path) -> Settings:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    models = tmp_path / "models.toml"
    models.write_text(registry(tiny_sd, broken))
    return settings.model_copy(
        update={"models": models, "worker_concurrency": 6, "progress_interval_s": 0.05}
    )


def pixels(image: Image.Image) -> np.ndarray[Any, Any]:
    return np.asarray(image, dtype=np.int16)


async def run(api: Api, body: dict[str, Any], route: str = "tiny/sd", **kw: Any) -> dict[str, Any]:
    response = await api.submit(body, route=route, **kw)
    assert response.status_code == 200, response.text
    return await api.result(response.json()["data"]["id"], wait=30)


async def images(api: Api, data: dict[str, Any]) -> list[Image.Image]:
    assert data["status"] == "completed", data
    return [await api.image(url) for url in data["outputs"]]


async def test_a_tiny_sd_route_serves_sizes_n_and_seeds_end_to_end(api: Api) -> None:
    body = {"prompt": "a red horse", "aspect_ratio": "3:2", "n": 2, "seed": 42}
    first = await run(api, body)
    assert first["seed"] == 42 and len(first["outputs"]) == 2
    pair = await images(api, first)
    assert [image.size for image in pair] == [(1248, 832), (1248, 832)]
    assert not np.array_equal(pixels(pair[0]), pixels(pair[1]))
    again = await images(api, await run(api, body))
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(pair, again, strict=True))
    other = await images(api, await run(api, {**body, "seed": 43}))
    assert not np.array_equal(pixels(pair[0]), pixels(other[0]))
    big = await images(api, await run(api, {"prompt": "x", "resolution": "2k", "seed": 1}))
    assert big[0].size == (2720, 1536)


async def test_the_random_seed_is_returned_and_reproduces_the_image(api: Api) -> None:
    first = await run(api, {"prompt": "a cat", "aspect_ratio": "1:1"})
    seed = first["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**32
    again = await run(api, {"prompt": "a cat", "aspect_ratio": "1:1", "seed": seed})
    [a], [b] = await images(api, first), await images(api, again)
    assert np.array_equal(pixels(a), pixels(b))


def data_uri(colour: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 90), colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_references_run_image_to_image_and_text_to_image_refuses_them(api: Api) -> None:
    data = await run(
        api,
        {"prompt": "a cat", "images": [data_uri("red")], "aspect_ratio": "auto", "seed": 3},
        task="image-to-image",
    )
    [image] = await images(api, data)
    assert image.size == (1152, 864)  # 'auto' snaps the 4:3 reference
    refused = await api.submit(
        {"prompt": "a cat", "images": [data_uri("red")]}, route="tiny/sd", task="text-to-image"
    )
    assert refused.status_code == 400
    assert refused.json()["message"] == (
        "images: model 'tiny/sd' takes no reference images for 'text-to-image'; "
        "send them to its image-to-image task"
    )


async def test_out_of_memory_fails_only_its_job_with_the_reason(api: Api) -> None:
    failed = await run(api, {"prompt": "oom please"}, route="tiny/faulty")
    assert failed["status"] == "failed"
    assert failed["error"].startswith("generation failed: out of memory on cpu rendering 1 image")
    assert len(await images(api, await run(api, {"prompt": "fine"}, route="tiny/faulty"))) == 1


async def test_a_broken_model_directory_fails_its_jobs_and_others_still_run(api: Api) -> None:
    failed = await run(api, {"prompt": "x"}, route="tiny/broken")
    assert failed["status"] == "failed"
    assert "could not load model 'tiny/broken' from '" in failed["error"]
    assert len(await images(api, await run(api, {"prompt": "x"}))) == 1


async def wait_for_progress(api: Api, prediction_id: str) -> dict[str, Any]:
    with anyio.fail_after(20):
        while True:
            response = await api.client.get(
                f"/api/v3/predictions/{prediction_id}", headers=api.auth
            )
            data: dict[str, Any] = response.json()["data"]
            if data["progress"] is not None:
                return data
            assert data["status"] in ("created", "processing"), data
            await anyio.sleep(0.02)


async def test_progress_is_visible_while_a_job_runs_and_gone_when_it_ends(api: Api) -> None:
    response = await api.submit({"prompt": "x"}, route="mock/slow")
    prediction_id = response.json()["data"]["id"]
    running = await wait_for_progress(api, prediction_id)
    assert running["status"] == "processing"
    assert running["progress"]["total"] == 4 and 1 <= running["progress"]["step"] <= 4
    done = await api.result(prediction_id, wait=10)
    assert done["status"] == "completed" and done["progress"] is None


async def test_cancelling_a_running_model_stops_it_and_frees_the_worker(api: Api) -> None:
    response = await api.submit({"prompt": "x"}, route="tiny/slow")  # 500 steps
    prediction_id = response.json()["data"]["id"]
    running = await wait_for_progress(api, prediction_id)
    assert running["progress"]["step"] < 500
    cancel = await api.client.post(f"/api/v3/predictions/{prediction_id}/cancel", headers=api.auth)
    assert cancel.status_code == 200
    ended = await api.result(prediction_id)
    assert ended["status"] == "failed" and ended["error"] == "cancelled"
    # The model stopped at its next step: the next job does not wait for 500 steps.
    with anyio.fail_after(5):
        assert len(await images(api, await run(api, {"prompt": "next"}))) == 1


async def test_concurrent_compatible_jobs_share_a_model_call_and_keep_their_own_images(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="imagegate.worker")
    bodies = [{"prompt": f"job {i}", "aspect_ratio": "1:1", "seed": 100 + i} for i in range(4)]
    # A job on the slow route keeps the model busy while the four pile up behind it.
    busy = (await api.submit({"prompt": "x"}, route="tiny/slow")).json()["data"]["id"]
    await wait_for_progress(api, busy)
    results: list[dict[str, Any]] = [{} for _ in bodies]

    async def submit(index: int) -> None:
        results[index] = await run(api, bodies[index])

    async with anyio.create_task_group() as group:
        for index in range(len(bodies)):
            group.start_soon(submit, index)
        await anyio.sleep(0.3)
        await api.client.post(f"/api/v3/predictions/{busy}/cancel", headers=api.auth)
    batches = [r.getMessage() for r in caplog.records if "running a batch" in r.getMessage()]
    assert any("of 4 job(s), 4 image(s) on tiny/sd" in line for line in batches), batches
    for body, data in zip(bodies, results, strict=True):
        [batched] = await images(api, data)
        [alone] = await images(api, await run(api, {**body}))
        assert np.abs(pixels(batched) - pixels(alone)).max() <= 3

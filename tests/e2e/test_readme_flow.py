"""The issue's "done when", as a new user does it: the GPTProto page's curl, against a real
``imagegate serve`` process, then the outputs it links to."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e

SUBMIT = "/api/v3/kwaivgi/kling-image-o1/text-to-image"
PROMPT = "A cozy cabin in a snowy forest at dusk, warm light in the windows"


def submit(server: ServerProcess, body: dict[str, Any], **headers: str) -> httpx.Response:
    # The GPTProto page's curl: the raw key in Authorization, a JSON body.
    return httpx.post(
        server.url + SUBMIT,
        json=body,
        headers={"Authorization": server.key, "Content-Type": "application/json", **headers},
        timeout=30,
    )


def poll(server: ServerProcess, get_url: str, timeout: float = 20) -> dict[str, Any]:
    """What a client does with ``urls.get``: read it until the job has ended."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(get_url, headers={"Authorization": server.key}, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["code"] == 200
        assert body["message"] == "success"
        data: dict[str, Any] = body["data"]
        if data["status"] in ("completed", "failed"):
            return data
        assert time.monotonic() < deadline, f"still {data['status']} after {timeout}s"
        time.sleep(0.1)


def fetch_image(url: str) -> Image.Image:
    # Output links are signed: no key needed, as with a CDN link from the hosted service.
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_curl_from_the_gptproto_page_gives_a_1360x768_png(server: ServerProcess) -> None:
    response = submit(
        server, {"prompt": PROMPT, "aspect_ratio": "16:9", "resolution": "1k", "n": 1}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == 200
    assert body["message"] == "success"
    data = body["data"]
    job_id = data["id"]
    assert isinstance(job_id, str)
    assert job_id
    assert data["model"] == "kwaivgi/kling-image-o1"
    assert data["status"] in ("created", "processing", "completed")
    assert data["urls"]["get"] == f"{server.url}/api/v3/predictions/{job_id}/result"

    result = poll(server, data["urls"]["get"])
    assert result["status"] == "completed", result
    assert result["id"] == job_id
    assert result["error"] is None
    assert len(result["outputs"]) == 1
    assert result["has_nsfw_contents"] == [False]
    assert isinstance(result["executionTime"], int)
    assert result["executionTime"] >= 0
    url = result["outputs"][0]
    assert url.startswith(f"{server.url}/")
    image = fetch_image(url)
    assert image.format == "PNG"
    assert image.size == (1360, 768)


def test_bearer_form_is_accepted_too(server: ServerProcess) -> None:
    response = httpx.post(
        server.url + SUBMIT,
        json={"prompt": PROMPT},
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_n_three_gives_three_outputs(server: ServerProcess) -> None:
    data = submit(server, {"prompt": PROMPT, "aspect_ratio": "16:9", "n": 3}).json()["data"]
    result = poll(server, data["urls"]["get"])
    assert result["status"] == "completed", result
    assert len(result["outputs"]) == 3
    assert len(set(result["outputs"])) == 3
    assert result["has_nsfw_contents"] == [False] * 3
    images = [fetch_image(url) for url in result["outputs"]]
    assert all(image.size == (1360, 768) for image in images)
    assert len({image.tobytes() for image in images}) == 3


def test_2k_doubles_the_sides(server: ServerProcess) -> None:
    data = submit(
        server, {"prompt": PROMPT, "aspect_ratio": "16:9", "resolution": "2k", "n": 1}
    ).json()["data"]
    result = poll(server, data["urls"]["get"])
    assert result["status"] == "completed", result
    assert fetch_image(result["outputs"][0]).size == (2720, 1536)


def test_sync_mode_answers_with_the_finished_job(server: ServerProcess) -> None:
    response = submit(server, {"prompt": PROMPT, "aspect_ratio": "1:1", "enable_sync_mode": True})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "completed"
    assert data["error"] is None
    assert len(data["outputs"]) == 1
    assert fetch_image(data["outputs"][0]).size == (1024, 1024)
    # The same job, read back, says the same.
    again = httpx.get(data["urls"]["get"], headers=server.auth, timeout=10).json()["data"]
    assert again["status"] == "completed"
    assert again["outputs"] == data["outputs"]


def test_base64_output_gives_data_uris(server: ServerProcess) -> None:
    response = submit(
        server,
        {
            "prompt": PROMPT,
            "n": 2,
            "enable_sync_mode": True,
            "enable_base64_output": True,
        },
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "completed"
    assert len(data["outputs"]) == 2
    for uri in data["outputs"]:
        assert uri.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True)))
        assert image.format == "PNG"
        assert image.size == (1360, 768)


def test_unknown_key_is_401_in_the_envelope(server: ServerProcess) -> None:
    response = httpx.post(
        server.url + SUBMIT,
        json={"prompt": PROMPT},
        headers={"Authorization": "ig_not_a_real_key"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["code"] == 401


def test_the_server_log_has_no_errors_after_the_flow(server: ServerProcess) -> None:
    data = submit(server, {"prompt": PROMPT, "enable_sync_mode": True}).json()["data"]
    assert data["status"] == "completed"
    assert server.log_problems() == []

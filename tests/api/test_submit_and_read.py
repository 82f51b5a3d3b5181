"""Submit, then read: the happy paths of SPEC §1-3 on the mock backend."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def _png(api: Api, url: str) -> Image.Image:
    response = await api.client.get(url)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


async def test_submit_answers_created_with_absolute_get_url(api: Api) -> None:
    response = await api.submit({"prompt": "a red circle"})
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 200 and body["message"] == "success"
    data = body["data"]
    assert data["model"] == "kwaivgi/kling-image-o1"
    assert data["status"] in ("created", "processing", "completed")
    assert data["urls"]["get"] == f"http://testserver/api/v3/predictions/{data['id']}/result"


async def test_result_completes_with_png_of_contract_size(api: Api) -> None:
    submitted = (await api.submit({"prompt": "a red circle"})).json()["data"]
    result = await api.result(submitted["id"])
    assert result["status"] == "completed"
    assert result["error"] is None
    outputs = result["outputs"]
    assert isinstance(outputs, list) and len(outputs) == 1
    image = await _png(api, outputs[0])
    assert image.format == "PNG" and image.size == (1360, 768)
    assert result["has_nsfw_contents"] == [False]
    assert isinstance(result["executionTime"], int) and result["executionTime"] >= 0


async def test_n_three_gives_three_distinct_outputs(api: Api) -> None:
    submitted = (await api.submit({"prompt": "x", "n": 3, "seed": 1})).json()["data"]
    result = await api.result(submitted["id"])
    outputs = result["outputs"]
    assert isinstance(outputs, list) and len(outputs) == 3
    pixels = {(await _png(api, url)).tobytes() for url in outputs}
    assert len(pixels) == 3


async def test_2k_doubles_both_sides(api: Api) -> None:
    submitted = (
        await api.submit({"prompt": "x", "resolution": "2k", "aspect_ratio": "2:1"})
    ).json()["data"]
    result = await api.result(submitted["id"])
    image = await _png(api, result["outputs"][0])  # type: ignore[index]
    assert image.size == (2880, 1440)


async def test_sync_mode_answers_with_the_finished_job(api: Api) -> None:
    response = await api.submit({"prompt": "x", "enable_sync_mode": True})
    data = response.json()["data"]
    assert data["status"] == "completed"
    assert len(data["outputs"]) == 1


async def test_base64_output_gives_data_uris_in_the_asked_format(api: Api) -> None:
    response = await api.submit(
        {
            "prompt": "x",
            "enable_sync_mode": True,
            "enable_base64_output": True,
            "output_format": "jpeg",
            "aspect_ratio": "1:1",
        }
    )
    data = response.json()["data"]
    uri = data["outputs"][0]
    assert uri.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.format == "JPEG" and image.size == (1024, 1024)


async def test_webp_output_format(api: Api) -> None:
    data = await api.submit({"prompt": "x", "output_format": "webp", "enable_sync_mode": True})
    image = await _png(api, data.json()["data"]["outputs"][0])
    assert image.format == "WEBP"


async def test_same_seed_same_pixels_other_seed_other_pixels(api: Api) -> None:
    async def pixels(seed: int) -> bytes:
        data = await api.submit({"prompt": "p", "seed": seed, "enable_sync_mode": True})
        return (await _png(api, data.json()["data"]["outputs"][0])).tobytes()

    assert await pixels(7) == await pixels(7)
    assert await pixels(7) != await pixels(8)


async def test_bearer_form_of_the_key_is_accepted(api: Api) -> None:
    response = await api.client.post(
        "/api/v3/kwaivgi/kling-image-o1/text-to-image",
        json={"prompt": "x"},
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert response.status_code == 200


async def test_both_read_paths_answer_the_same_prediction(api: Api) -> None:
    job_id = (await api.submit({"prompt": "x", "enable_sync_mode": True})).json()["data"]["id"]
    a = await api.client.get(f"/api/v3/predictions/{job_id}/result", headers=api.auth)
    b = await api.client.get(f"/api/v3/predictions/{job_id}", headers=api.auth)
    assert a.json() == b.json()


async def test_created_at_is_utc_in_contract_format(api: Api) -> None:
    from datetime import UTC, datetime

    data = (await api.submit({"prompt": "x"})).json()["data"]
    stamp = datetime.strptime(data["created_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


async def test_public_base_url_is_used_for_urls(api: Api) -> None:
    api.services.settings.public_base_url = "https://img.example.com/gw"  # type: ignore[attr-defined]
    data = (await api.submit({"prompt": "x", "enable_sync_mode": True})).json()["data"]
    assert data["urls"]["get"].startswith("https://img.example.com/gw/api/v3/predictions/")
    assert data["outputs"][0].startswith("https://img.example.com/gw/api/v3/media/files/")


async def test_forwarded_headers_shape_urls_behind_a_proxy(api: Api) -> None:
    response = await api.submit(
        {"prompt": "x"},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example.org"},
    )
    assert response.json()["data"]["urls"]["get"].startswith(
        "https://gw.example.org/api/v3/predictions/"
    )


async def test_other_accounts_cannot_read_a_prediction(api: Api) -> None:
    job_id = (await api.submit({"prompt": "x"})).json()["data"]["id"]
    response = await api.client.get(
        f"/api/v3/predictions/{job_id}/result", headers=await api.other_account_auth()
    )
    assert response.status_code == 404
    assert response.json()["code"] == 404

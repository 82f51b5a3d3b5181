"""The prediction list, cancellation, and the ?wait= long-poll."""

from __future__ import annotations

import time

import anyio
import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def test_list_is_newest_first_paged_and_only_the_accounts_own(api: Api) -> None:
    ids = [(await api.submit({"prompt": f"p{i}"})).json()["data"]["id"] for i in range(5)]
    await api.client.post(
        "/api/v3/kwaivgi/kling-image-o1/text-to-image",
        json={"prompt": "theirs"},
        headers=await api.other_account_auth(),
    )
    first = await api.client.get(
        "/api/v3/predictions", params={"page": 1, "page_size": 2}, headers=api.auth
    )
    data = first.json()["data"]
    assert data["total"] == 5 and data["page"] == 1 and data["page_size"] == 2
    assert [item["id"] for item in data["items"]] == ids[::-1][:2]
    third = await api.client.get(
        "/api/v3/predictions", params={"page": 3, "page_size": 2}, headers=api.auth
    )
    assert [item["id"] for item in third.json()["data"]["items"]] == [ids[0]]


async def test_list_post_form_and_filters(api: Api) -> None:
    done = (await api.submit({"prompt": "a", "enable_sync_mode": True})).json()["data"]["id"]
    response = await api.client.post(
        "/api/v3/predictions",
        json={
            "page": 1,
            "page_size": 10,
            "status": "completed",
            "model": "kwaivgi/kling-image-o1",
            "created_after": "2000-01-01T00:00:00Z",
        },
        headers=api.auth,
    )
    items = response.json()["data"]["items"]
    assert done in [item["id"] for item in items]
    assert all(item["status"] == "completed" for item in items)
    none = await api.client.get(
        "/api/v3/predictions", params={"created_before": "2000-01-01T00:00:00Z"}, headers=api.auth
    )
    assert none.json()["data"]["total"] == 0


async def test_list_page_size_over_100_is_400(api: Api) -> None:
    response = await api.client.get(
        "/api/v3/predictions", params={"page_size": 101}, headers=api.auth
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("page_size:")


@pytest.mark.parametrize("settings_override", ["slow"], indirect=True)
async def test_sync_mode_timeout_answers_the_job_as_it_stands(api: Api) -> None:
    response = await api.submit({"prompt": "x", "enable_sync_mode": True})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] in ("created", "processing")
    assert data["error"] == "Sync mode timed out; poll urls.get for the result"
    final = await api.result(data["id"], wait=10)
    assert final["status"] == "completed" and final["error"] is None


@pytest.mark.parametrize("settings_override", ["slow"], indirect=True)
async def test_long_poll_returns_as_soon_as_the_job_ends(api: Api) -> None:
    job_id = (await api.submit({"prompt": "x"})).json()["data"]["id"]
    started = time.monotonic()
    final = await api.result(job_id, wait=20)
    assert final["status"] == "completed"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("settings_override", ["slow"], indirect=True)
async def test_long_poll_gives_up_after_wait_with_the_job_unfinished(api: Api) -> None:
    job_id = (await api.submit({"prompt": "x"})).json()["data"]["id"]
    data = await api.result(job_id, wait=0.1)
    assert data["status"] in ("created", "processing")
    assert data["error"] is None


@pytest.mark.parametrize("settings_override", ["slow"], indirect=True)
async def test_cancel_fails_a_running_job_and_it_stays_failed(api: Api) -> None:
    job_id = (await api.submit({"prompt": "x"})).json()["data"]["id"]
    response = await api.client.post(f"/api/v3/predictions/{job_id}/cancel", headers=api.auth)
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "failed"
    assert response.json()["data"]["error"] == "cancelled"
    final = await api.result(job_id, wait=3)
    assert final["status"] == "failed" and final["outputs"] == []
    again = await api.client.post(f"/api/v3/predictions/{job_id}/cancel", headers=api.auth)
    assert again.status_code == 400


async def test_cancel_someone_elses_job_is_404(api: Api) -> None:
    job_id = (await api.submit({"prompt": "x"})).json()["data"]["id"]
    response = await api.client.post(
        f"/api/v3/predictions/{job_id}/cancel", headers=await api.other_account_auth()
    )
    assert response.status_code == 404


@pytest.mark.parametrize("settings_override", ["slow"], indirect=True)
async def test_cancelling_a_running_job_stops_the_backend_at_its_next_step(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="imagegate")
    job_id = (await api.submit({"prompt": "x"})).json()["data"]["id"]
    for _ in range(100):
        if (await api.result(job_id, wait=0))["status"] == "processing":
            break
        await anyio.sleep(0.02)
    await api.client.post(f"/api/v3/predictions/{job_id}/cancel", headers=api.auth)
    for _ in range(100):
        if any("job stopped" in r.getMessage() for r in caplog.records):
            break
        await anyio.sleep(0.02)
    # The mock's steps are 375 ms apart; a job that ran to its end would log
    # "result discarded" instead, after the full 1.5 s.
    assert any("job stopped" in r.getMessage() for r in caplog.records)
    assert not any("result discarded" in r.getMessage() for r in caplog.records)

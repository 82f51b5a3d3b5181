"""Server-Sent Events of a prediction: status and steps as they move on, ids that let a
client resume, and the SDK reading them."""

from __future__ import annotations

import pytest

from imagegate import client as sdk
from imagegate.client._sse import EventParser
from tests.conftest import Api

pytestmark = pytest.mark.anyio


def parse(text: str) -> list[tuple[str | None, str]]:
    parser = EventParser()
    events = [parser.feed(line) for line in text.split("\n")]
    return [(e.id, e.event) for e in events if e is not None]


@pytest.mark.parametrize("settings_override", ["slow"], indirect=True)
async def test_events_follow_the_job_to_its_end(api: Api) -> None:
    job_id = (await api.submit({"prompt": "p"})).json()["data"]["id"]
    response = await api.client.get(f"/api/v3/predictions/{job_id}/events", headers=api.auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse(response.text)
    assert events[-1][1] == "completed" and (events[-1][0] or "").startswith("2-")
    assert [e for e in events if e[1] == "processing"], events
    ids = [tuple(map(int, (i or "").split("-"))) for i, _ in events]
    assert ids == sorted(set(ids)), "events move forwards only, each once"


async def test_a_resumed_stream_sends_only_what_is_newer(api: Api) -> None:
    job_id = (await api.submit({"prompt": "p", "enable_sync_mode": True})).json()["data"]["id"]
    path = f"/api/v3/predictions/{job_id}/events"
    whole = parse((await api.client.get(path, headers=api.auth)).text)
    assert len(whole) == 1 and whole[0][1] == "completed"
    last = whole[0][0] or ""
    resumed = await api.client.get(path, headers={**api.auth, "Last-Event-ID": "1-0"})
    assert parse(resumed.text) == whole
    done = await api.client.get(path, headers={**api.auth, "Last-Event-ID": last})
    assert done.status_code == 200 and parse(done.text) == []


async def test_events_of_someone_elses_job_are_404(api: Api) -> None:
    job_id = (await api.submit({"prompt": "p"})).json()["data"]["id"]
    other = await api.other_account_auth()
    response = await api.client.get(f"/api/v3/predictions/{job_id}/events", headers=other)
    assert response.status_code == 404 and response.json()["code"] == 404


@pytest.mark.parametrize("settings_override", ["slow"], indirect=True)
async def test_the_sdk_reads_the_events(api: Api) -> None:
    client = sdk.AsyncClient("http://testserver", api.key, http_client=api.client)
    handle = await client.submit("kwaivgi/kling-image-o1", prompt="p")
    seen = [p async for p in handle.events()]
    assert seen[-1].status == "completed" and handle.status == "completed"
    assert any(p.progress is not None for p in seen)


def test_the_event_parser_follows_the_format() -> None:
    parser = EventParser()
    lines = [": hi", "id: 7", "event: x", "data: a", "data: b", "", "data: c", ""]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert [(e.id, e.event, e.data) for e in events] == [("7", "x", "a\nb"), ("7", "message", "c")]

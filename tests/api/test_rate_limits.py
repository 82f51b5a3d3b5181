"""Requests per window per key and per account (429 with Retry-After and X-RateLimit-*),
reads counted apart from submits, and one limit across servers that share Redis."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from imagegate.domain.rates import Limits
from imagegate.settings import Settings
from tests.conftest import Api

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("IMAGEGATE_TEST_REDIS_URL", "")
SUBMIT = "/api/v3/kwaivgi/kling-image-o1/text-to-image"


async def limited_key(api: Api, key_rate: str | None, account_rate: str | None = None) -> str:
    accounts: Any = api.services.accounts
    account = await accounts.create_account("a", limits=Limits(rate_limit=account_rate))
    return str(
        (await accounts.create_key("k", account.id, limits=Limits(rate_limit=key_rate))).token
    )


@pytest.mark.parametrize("settings_override", ["no_worker"], indirect=True)
async def test_submits_past_the_keys_limit_are_429_with_retry_after(api: Api) -> None:
    auth = {"Authorization": await limited_key(api, "3/minute")}
    remaining = []
    for _ in range(3):
        response = await api.client.post(SUBMIT, json={"prompt": "p"}, headers=auth)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        remaining.append(response.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    refused = await api.client.post(SUBMIT, json={"prompt": "p"}, headers=auth)
    assert refused.status_code == 429
    assert refused.json() == {
        "code": 429,
        "message": "rate limit exceeded: this key may make 3 per 1 minute submit requests",
        "data": None,
    }
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["X-RateLimit-Reset"]) <= 60
    listed = await api.client.get("/api/v3/predictions", headers=auth)
    assert listed.json()["data"]["total"] == 3  # the refused submit made no job


@pytest.mark.parametrize("settings_override", ["no_worker"], indirect=True)
async def test_an_accounts_limit_covers_all_its_keys(api: Api) -> None:
    accounts: Any = api.services.accounts
    account = await accounts.create_account("team", limits=Limits(rate_limit="2/minute"))
    keys = [(await accounts.create_key(f"k{i}", account.id)).token for i in range(2)]
    for key in keys:
        ok = await api.client.post(SUBMIT, json={"prompt": "p"}, headers={"Authorization": key})
        assert ok.status_code == 200
    refused = await api.client.post(
        SUBMIT, json={"prompt": "p"}, headers={"Authorization": keys[0]}
    )
    assert refused.status_code == 429
    assert "this account may make 2 per 1 minute" in refused.json()["message"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.read_rate_limit = "5/minute"
    return settings


@pytest.mark.parametrize("settings_override", ["no_worker"], indirect=True)
async def test_reads_are_limited_apart_from_submits(api: Api) -> None:
    auth = {"Authorization": await limited_key(api, "1/minute")}
    job_id = (await api.client.post(SUBMIT, json={"prompt": "p"}, headers=auth)).json()["data"][
        "id"
    ]
    assert (await api.client.post(SUBMIT, json={"prompt": "p"}, headers=auth)).status_code == 429
    result = f"/api/v3/predictions/{job_id}/result"
    codes = [(await api.client.get(result, headers=auth)).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    other = {"Authorization": await limited_key(api, None)}
    # Another key's reads are its own.
    assert (await api.client.get("/api/v3/predictions", headers=other)).status_code == 200


@asynccontextmanager
async def server(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from imagegate.assembly import build_app

    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def accepted_across_two_servers(api: Api, settings: Settings, sharing: bool) -> int:
    """Six racing submits, three through each of two servers, with a key of 4/minute."""
    key = await limited_key(api, "4/minute")
    codes: list[int] = []
    configure: Callable[[Settings], Settings] = lambda s: s.model_copy(  # noqa: E731
        update={"run_worker": False, "redis_url": REDIS_URL if sharing else None}
    )
    async with server(configure(settings)) as first, server(configure(settings)) as second:

        async def submit(client: httpx.AsyncClient) -> None:
            response = await client.post(
                SUBMIT, json={"prompt": "p"}, headers={"Authorization": key}
            )
            codes.append(response.status_code)

        async with anyio.create_task_group() as group:
            for i in range(6):
                group.start_soon(submit, first if i % 2 else second)
    assert set(codes) <= {200, 429}
    return codes.count(200)


@pytest.mark.skipif(not REDIS_URL, reason="IMAGEGATE_TEST_REDIS_URL is not set; needs Redis")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_two_servers_sharing_redis_enforce_one_limit(api: Api, settings: Settings) -> None:
    assert await accepted_across_two_servers(api, settings, sharing=True) == 4
    # Without Redis each process counts alone: the same traffic gets through more often.
    assert await accepted_across_two_servers(api, settings, sharing=False) == 6

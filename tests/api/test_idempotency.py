"""Idempotency-Key on submit (SPEC §6): the same key and body within 24 h return the same
job, charged once, however the retries race; the same key with another body is a 400."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from imagegate.domain.pricing import parse_usd
from imagegate.services.clock import utc_now
from imagegate.settings import Settings
from imagegate.store import idempotency
from tests.conftest import MOCK_REGISTRY, Api, mock_registry

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    settings.models = mock_registry(tmp_path, MOCK_REGISTRY + "price = 0.01\n")
    return settings


async def test_a_retried_submit_returns_the_first_job(api: Api) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await api.submit({"prompt": "a red circle", "n": 2}, headers=headers)
    again = await api.submit({"prompt": "a red circle", "n": 2}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    other = await api.submit({"prompt": "a red circle", "n": 2}, headers={"Idempotency-Key": "x"})
    assert other.json()["data"]["id"] != first.json()["data"]["id"]
    listed = await api.client.get("/api/v3/predictions", headers=api.auth)
    assert listed.json()["data"]["total"] == 2


async def test_the_same_key_with_another_request_is_400(api: Api) -> None:
    headers = {"Idempotency-Key": "order-43"}
    await api.submit({"prompt": "a red circle"}, headers=headers)
    response = await api.submit({"prompt": "a blue square"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Idempotency-Key: this key was used with a different request in the last 24 hours"
    )


@pytest.mark.parametrize("settings_override", ["no_worker"], indirect=True)
async def test_racing_retries_make_one_job_and_one_charge(api: Api) -> None:
    accounts: Any = api.services.accounts
    account = await accounts.create_account("m", balance_micros=parse_usd("1.00"))
    key = (await accounts.create_key("k", account.id)).token
    headers = {"Authorization": key, "Idempotency-Key": "retry-me"}
    ids: list[str] = []

    async def submit() -> None:
        response = await api.submit({"prompt": "p"}, headers=headers)
        assert response.status_code == 200, response.text
        ids.append(response.json()["data"]["id"])

    async with anyio.create_task_group() as group:
        for _ in range(12):
            group.start_soon(submit)
    assert len(set(ids)) == 1 and len(ids) == 12
    listed = await api.client.get("/api/v3/predictions", headers={"Authorization": key})
    assert listed.json()["data"]["total"] == 1
    statement = await accounts.statement(account.id)
    assert [e.kind.value for e in statement.entries] == ["charge", "topup"]
    assert statement.account.balance_micros == parse_usd("0.99") == statement.ledger_total


async def test_keys_belong_to_their_account_and_last_24_hours(api: Api) -> None:
    headers = {"Idempotency-Key": "shared-name"}
    mine = (await api.submit({"prompt": "p"}, headers=headers)).json()["data"]["id"]
    theirs = await api.submit(
        {"prompt": "p"}, headers={**await api.other_account_auth(), **headers}
    )
    assert theirs.json()["data"]["id"] != mine
    principal = await api.services.accounts.authenticate(api.key)  # type: ignore[attr-defined]
    async with api.services.db.read() as conn:  # type: ignore[attr-defined]
        now = utc_now()
        assert await idempotency.find(conn, principal.account_id, "shared-name", now)
        later = now + timedelta(hours=24, seconds=1)
        assert await idempotency.find(conn, principal.account_id, "shared-name", later) is None

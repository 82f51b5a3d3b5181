"""Prices, balances and the ledger; key scopes, expiry and concurrency limits (SPEC §4),
on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from imagegate.domain.pricing import parse_usd
from imagegate.domain.rates import Limits
from imagegate.services.clock import utc_now
from imagegate.settings import Settings
from imagegate.store import ledger
from tests.conftest import Api

pytestmark = pytest.mark.anyio

PRICE = parse_usd("0.028")
REGISTRY = """
[models."kwaivgi/kling-image-o1"]
backend = "mock"
tasks = ["text-to-image"]
price = 0.028
price_2k = "0.056"

[models."test/exploding"]
backend = "tests.worker.backends:ExplodingBackend"
tasks = ["text-to-image"]
price = 0.01

[models."acme/house-style"]
backend = "mock"
tasks = ["text-to-image"]
"""


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "priced.toml"
    path.write_text(REGISTRY)
    settings.models = path
    return settings


async def metered_key(api: Api, balance: str, **key: Any) -> tuple[str, dict[str, str]]:
    """A new account with ``balance`` dollars, and auth headers for a key of it."""
    accounts = api.services.accounts  # type: ignore[attr-defined]
    account = await accounts.create_account("metered", balance_micros=parse_usd(balance))
    new = await accounts.create_key("k", account.id, **key)
    return account.id, {"Authorization": new.token}


async def statement(api: Api, account_id: str) -> Any:
    return await api.services.accounts.statement(account_id, 1000)  # type: ignore[attr-defined]


@pytest.fixture
async def second_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second server on the same database, as a second process would be."""
    from imagegate.assembly import build_app

    app = build_app(settings.model_copy(update={"run_worker": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://second") as client:
            yield client


async def test_forty_racing_submits_on_a_balance_for_ten_images_admit_exactly_ten(
    api: Api, second_app: httpx.AsyncClient
) -> None:
    account_id, auth = await metered_key(api, "0.30")  # ten at $0.028, not eleven
    path = "/api/v3/kwaivgi/kling-image-o1/text-to-image"
    responses: list[httpx.Response] = []

    async def submit(client: httpx.AsyncClient, i: int) -> None:
        responses.append(await client.post(path, json={"prompt": f"p{i}"}, headers=auth))

    async with anyio.create_task_group() as group:
        for i in range(40):
            # Half through each server: the two share only the database.
            group.start_soon(submit, api.client if i % 2 else second_app, i)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 10 + [403] * 30
    refused = next(r.json() for r in responses if r.status_code == 403)
    assert refused["code"] == 403
    assert "insufficient balance" in refused["message"]
    assert "costs $0.028" in refused["message"] and "balance is $0.02" in refused["message"]
    account = await statement(api, account_id)
    assert account.account.balance_micros == parse_usd("0.30") - 10 * PRICE
    assert account.ledger_total == account.account.balance_micros
    charges = [e for e in account.entries if e.kind == ledger.Kind.CHARGE]
    assert len(charges) == 10 and {e.amount_micros for e in charges} == {-PRICE}


async def test_a_job_costs_n_images_at_its_resolutions_price(api: Api) -> None:
    account_id, auth = await metered_key(api, "1.00")
    response = await api.submit({"prompt": "p", "n": 3, "resolution": "2k"}, headers=auth)
    assert response.status_code == 200, response.text
    account = await statement(api, account_id)
    assert account.account.balance_micros == parse_usd("1.00") - 3 * parse_usd("0.056")
    assert [e.prediction_id for e in account.entries if e.kind == ledger.Kind.CHARGE] == [
        response.json()["data"]["id"]
    ]


async def test_a_balance_below_the_price_is_403_and_not_charged(api: Api) -> None:
    account_id, auth = await metered_key(api, "0.027")
    response = await api.submit({"prompt": "p"}, headers=auth)
    assert response.status_code == 403
    assert response.json() == {
        "code": 403,
        "message": "insufficient balance: this job costs $0.028 and the balance is $0.027",
        "data": None,
    }
    account = await statement(api, account_id)
    assert account.account.balance_micros == parse_usd("0.027") == account.ledger_total
    listed = await api.client.get("/api/v3/predictions", headers=auth)
    assert listed.json()["data"]["total"] == 0  # refused: no job was created


async def test_a_failed_job_is_refunded_exactly_once(api: Api) -> None:
    account_id, auth = await metered_key(api, "0.05")
    response = await api.submit(
        {"prompt": "explode", "enable_sync_mode": True}, route="test/exploding", headers=auth
    )
    data = response.json()["data"]
    assert data["status"] == "failed"
    account = await statement(api, account_id)
    assert account.account.balance_micros == parse_usd("0.05") == account.ledger_total
    kinds = sorted(e.kind.value for e in account.entries if e.prediction_id == data["id"])
    assert kinds == ["charge", "refund"]
    # Any later attempt to fail or refund it again changes nothing.
    services: Any = api.services
    async with services.db.write() as conn:
        assert await ledger.refund(conn, data["id"], utc_now()) == 0
    job = await services.predictions.get(
        await services.accounts.authenticate(auth["Authorization"]), data["id"]
    )
    assert await services.execution.fail(job, "someone", "again", execution_ms=0) is False
    again = await statement(api, account_id)
    assert again.account.balance_micros == parse_usd("0.05") == again.ledger_total
    assert len(again.entries) == len(account.entries)


@pytest.mark.parametrize("settings_override", ["no_worker"], indirect=True)
async def test_a_cancelled_job_is_refunded_exactly_once(api: Api) -> None:
    account_id, auth = await metered_key(api, "0.10")
    job_id = (await api.submit({"prompt": "p", "n": 2}, headers=auth)).json()["data"]["id"]
    assert (await statement(api, account_id)).account.balance_micros == parse_usd("0.044")
    cancel = f"/api/v3/predictions/{job_id}/cancel"
    assert (await api.client.post(cancel, headers=auth)).status_code == 200
    assert (await api.client.post(cancel, headers=auth)).status_code == 400
    account = await statement(api, account_id)
    assert account.account.balance_micros == parse_usd("0.10") == account.ledger_total
    assert sorted(e.kind.value for e in account.entries) == ["charge", "refund", "topup"]


async def test_an_unmetered_account_is_never_refused_and_keeps_no_ledger(api: Api) -> None:
    response = await api.submit({"prompt": "p", "n": 9, "resolution": "2k"})
    assert response.status_code == 200
    principal = await api.services.accounts.authenticate(api.key)  # type: ignore[attr-defined]
    account = await statement(api, principal.account_id)
    assert account.account.balance_micros is None
    assert account.entries == [] and account.ledger_total == 0


async def test_a_key_scoped_to_acme_is_403_on_other_routes(api: Api) -> None:
    _, auth = await metered_key(api, "1.00", models=["acme/*"])
    refused = await api.submit({"prompt": "p"}, headers=auth)
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == 403
    assert body["message"] == (
        "this API key may not use model 'kwaivgi/kling-image-o1'; it may use: acme/*"
    )
    allowed = await api.submit({"prompt": "p"}, route="acme/house-style", headers=auth)
    assert allowed.status_code == 200, allowed.text


async def test_an_expired_key_is_401(api: Api) -> None:
    accounts: Any = api.services.accounts
    expired = await accounts.create_key("old", expires_at=utc_now() - timedelta(seconds=1))
    response = await api.submit({"prompt": "p"}, headers={"Authorization": expired.token})
    assert response.status_code == 401
    assert response.json()["message"] == "the API key has expired"
    fresh = await accounts.create_key("new", expires_at=utc_now() + timedelta(days=1))
    ok = await api.submit({"prompt": "p"}, headers={"Authorization": fresh.token})
    assert ok.status_code == 200


async def test_a_revoked_key_is_401(api: Api) -> None:
    accounts: Any = api.services.accounts
    new = await accounts.create_key("gone")
    await accounts.revoke(new.record.id)
    response = await api.submit({"prompt": "p"}, headers={"Authorization": new.token})
    assert response.status_code == 401
    assert response.json()["code"] == 401


@pytest.mark.parametrize("settings_override", ["no_worker"], indirect=True)
@pytest.mark.parametrize("where", ["account", "key"])
async def test_unfinished_jobs_over_the_limit_are_429_with_retry_after(
    api: Api, where: str
) -> None:
    accounts: Any = api.services.accounts
    limits = Limits(max_concurrent=2)
    account = await accounts.create_account(
        "busy", limits=limits if where == "account" else Limits()
    )
    new = await accounts.create_key("k", account.id, limits=limits if where == "key" else Limits())
    auth = {"Authorization": new.token}
    first, _ = [
        (await api.submit({"prompt": "p"}, headers=auth)).json()["data"]["id"] for _ in range(2)
    ]
    third = await api.submit({"prompt": "p"}, headers=auth)
    assert third.status_code == 429
    assert third.json()["code"] == 429
    assert f"this {where} may have 2 unfinished jobs at once" in third.json()["message"]
    assert int(third.headers["Retry-After"]) >= 1
    await api.client.post(f"/api/v3/predictions/{first}/cancel", headers=auth)
    assert (await api.submit({"prompt": "p"}, headers=auth)).status_code == 200


async def test_a_top_up_adds_a_ledger_row_and_unmetered_accounts_refuse_it(api: Api) -> None:
    accounts: Any = api.services.accounts
    account_id, _ = await metered_key(api, "0.50")
    assert await accounts.topup(account_id, parse_usd("1.25")) == parse_usd("1.75")
    account = await statement(api, account_id)
    assert [e.amount_micros for e in account.entries] == [parse_usd("1.25"), parse_usd("0.50")]
    assert account.ledger_total == parse_usd("1.75")
    principal = await accounts.authenticate(api.key)
    with pytest.raises(Exception, match="is unmetered"):
        await accounts.topup(principal.account_id, 1)

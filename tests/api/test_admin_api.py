"""The admin API does over HTTP what `imagegate accounts` and `keys` do, behind its own key."""

from __future__ import annotations

import pytest

from imagegate.settings import Settings
from tests.conftest import Api

pytestmark = pytest.mark.anyio

ADMIN_KEY = "admin-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.admin_key = ADMIN_KEY
    return settings


async def test_the_admin_api_is_off_without_an_admin_key(api: Api) -> None:
    api.services.settings.admin_key = None  # type: ignore[attr-defined]
    response = await api.client.get("/admin/v1/keys", headers=ADMIN)
    assert response.status_code == 401
    assert response.json() == {
        "code": 401,
        "message": "the admin API is off: set IMAGEGATE_ADMIN_KEY to use it",
        "data": None,
    }


async def test_an_ordinary_key_never_opens_the_admin_api(api: Api) -> None:
    for headers in (api.auth, {"Authorization": f"Bearer {api.key}"}, {}):
        response = await api.client.post("/admin/v1/accounts", json={"name": "x"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["message"] == "the admin key is missing or invalid"


async def test_accounts_top_ups_keys_and_revocation_over_http(api: Api) -> None:
    created = await api.client.post(
        "/admin/v1/accounts",
        json={"name": "acme", "balance": "1.00", "rate_limit": "60/minute"},
        headers=ADMIN,
    )
    assert created.status_code == 200, created.text
    account = created.json()["data"]
    assert account["balance"] == "1.00" and account["rate_limit"] == "60/minute"
    assert account["webhook_secret"].startswith("whsec_")
    topped = await api.client.post(
        f"/admin/v1/accounts/{account['id']}/topup", json={"amount": 0.028}, headers=ADMIN
    )
    assert topped.json()["data"]["balance"] == "1.028"
    shown = (await api.client.get(f"/admin/v1/accounts/{account['id']}", headers=ADMIN)).json()
    assert shown["data"]["ledger_total"] == "1.028"
    assert [e["amount"] for e in shown["data"]["ledger"]] == ["0.028", "1.00"]

    key = await api.client.post(
        "/admin/v1/keys",
        json={"name": "ci", "account_id": account["id"], "models": ["acme/*"], "expires_in": "1d"},
        headers=ADMIN,
    )
    assert key.status_code == 200, key.text
    info = key.json()["data"]
    assert info["models"] == ["acme/*"] and info["expires_at"] and info["key"].startswith("ig_")
    scoped = await api.submit({"prompt": "p"}, headers={"Authorization": info["key"]})
    assert scoped.status_code == 403  # its scope excludes the route
    listed = await api.client.get(f"/admin/v1/keys?account_id={account['id']}", headers=ADMIN)
    assert [k["id"] for k in listed.json()["data"]] == [info["id"]]
    assert all(k["key"] is None for k in listed.json()["data"])  # never shown again

    revoked = await api.client.post(f"/admin/v1/keys/{info['id']}/revoke", headers=ADMIN)
    assert revoked.json()["data"]["revoked_at"]
    gone = await api.submit({"prompt": "p"}, headers={"Authorization": info["key"]})
    assert gone.status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/admin/v1/accounts", {"name": "x", "balance": "abc"}, "balance: 'abc' is not an amount"),
        ("/admin/v1/accounts", {"name": "x", "balance": "-1"}, "balance: '-1' must not be neg"),
        ("/admin/v1/accounts", {"name": "x", "rate_limit": "often"}, "rate_limit: 'often' is no"),
        ("/admin/v1/keys", {"name": "x", "expires_in": "soon"}, "expires_in: 'soon' is not a d"),
        ("/admin/v1/keys", {"name": "x", "account_id": "nope"}, "account 'nope' not found"),
        ("/admin/v1/accounts/nope/topup", {"amount": "1"}, "account 'nope' not found"),
        ("/admin/v1/accounts", {"name": "x", "extra": 1}, "extra"),
    ],
)
async def test_bad_admin_requests_say_what_is_wrong(
    api: Api, path: str, body: dict[str, object], message: str
) -> None:
    response = await api.client.post(path, json=body, headers=ADMIN)
    assert response.status_code in (400, 404)
    assert response.json()["code"] == response.status_code
    assert message in response.json()["message"]

"""The content-policy path (SPEC §4): a forbidden prompt is HTTP 400 with code 503 and
charges nothing; an unsafe output fails its job on a blocking route (never stored, the
charge refunded) and is flagged in has_nsfw_contents on a flagging route."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagegate.domain.pricing import parse_usd
from imagegate.settings import Settings
from tests.conftest import Api

pytestmark = pytest.mark.anyio

REGISTRY = """
[models."kwaivgi/kling-image-o1"]
backend = "tests.worker.backends:ColourBackend"
tasks = ["text-to-image"]
price = 0.05

[models."test/flagging"]
backend = "tests.worker.backends:ColourBackend"
tasks = ["text-to-image"]
safety = "flag"
"""
BLOCKED = {"code": 503, "message": "content blocked due to safety concerns", "data": None}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Parametrize indirectly with another checker's ``module:Class`` to use it instead."""
    path = tmp_path / "safety.toml"
    path.write_text(REGISTRY)
    settings.models = path
    settings.image_checker = getattr(request, "param", "tests.worker.backends:MagentaChecker")
    return settings


async def metered(api: Api) -> tuple[str, dict[str, str]]:
    accounts: Any = api.services.accounts
    account = await accounts.create_account("m", balance_micros=parse_usd("1.00"))
    return account.id, {"Authorization": (await accounts.create_key("k", account.id)).token}


async def balance(api: Api, account_id: str) -> int:
    statement = await api.services.accounts.statement(account_id)  # type: ignore[attr-defined]
    assert statement.ledger_total == statement.account.balance_micros
    return int(statement.account.balance_micros)


@pytest.mark.parametrize("prompt", ["a nude woman", "N.U.D.E", "a p0rn poster"])
async def test_a_forbidden_prompt_is_400_with_code_503_and_charges_nothing(
    api: Api, prompt: str
) -> None:
    account_id, auth = await metered(api)
    response = await api.submit({"prompt": prompt}, headers=auth)
    assert response.status_code == 400
    assert response.json() == BLOCKED
    assert await balance(api, account_id) == parse_usd("1.00")
    listed = await api.client.get("/api/v3/predictions", headers=auth)
    assert listed.json()["data"]["total"] == 0


async def test_a_flagging_route_takes_a_forbidden_prompt(api: Api) -> None:
    response = await api.submit({"prompt": "a nude statue"}, route="test/flagging")
    assert response.status_code == 200


async def test_an_unsafe_output_fails_the_job_unstored_and_refunded(api: Api) -> None:
    account_id, auth = await metered(api)
    body = {"prompt": "magenta", "n": 2, "enable_sync_mode": True}
    data = (await api.submit(body, headers=auth)).json()["data"]
    assert data["status"] == "failed"
    assert data["error"] == "content blocked due to safety concerns"
    assert data["outputs"] == []
    assert await balance(api, account_id) == parse_usd("1.00")  # charged, then refunded
    files = Path(api.services.settings.outputs_dir)  # type: ignore[attr-defined]
    assert not any((files / "outputs" / data["id"]).rglob("*.png")), "an unsafe image was stored"


async def test_a_safe_output_is_stored_and_marked_safe(api: Api) -> None:
    account_id, auth = await metered(api)
    data = (
        await api.submit({"prompt": "grey", "n": 2, "enable_sync_mode": True}, headers=auth)
    ).json()["data"]
    assert data["status"] == "completed"
    assert data["has_nsfw_contents"] == [False, False]
    assert await balance(api, account_id) == parse_usd("0.90")
    files = Path(api.services.settings.outputs_dir)  # type: ignore[attr-defined]
    assert len(list((files / "outputs" / data["id"]).rglob("*.png"))) == 2


async def test_a_flagging_route_stores_unsafe_outputs_and_flags_each(api: Api) -> None:
    body = {"prompt": "magenta 1", "n": 3, "enable_sync_mode": True}
    data = (await api.submit(body, route="test/flagging")).json()["data"]
    assert data["status"] == "completed"
    assert data["has_nsfw_contents"] == [False, True, False]
    colours = [(await api.image(url)).getpixel((0, 0)) for url in data["outputs"]]
    assert colours == [(128, 128, 128), (255, 0, 255), (128, 128, 128)]


@pytest.mark.parametrize("settings", ["tests.worker.backends:FlaglessChecker"], indirect=True)
async def test_a_broken_image_check_fails_the_job_saying_what_broke(api: Api) -> None:
    account_id, auth = await metered(api)
    body = {"prompt": "grey", "enable_sync_mode": True}
    data = (await api.submit(body, headers=auth)).json()["data"]
    assert data["status"] == "failed"
    assert data["error"] == "generation failed: the image check answered 0 flags for 1"
    assert await balance(api, account_id) == parse_usd("1.00")

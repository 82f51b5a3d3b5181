"""A request that no target of a route can serve is a 400 at submit, naming the provider
and the parameter, and nothing is charged; a target that cannot serve it is skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagegate.assembly import build_app
from imagegate.settings import Settings
from tests.conftest import mock_registry

OPENAI = """\
backend = "upstream"
provider = "openai"
base_url = "http://127.0.0.1:9"
api_keys_env = "NO_KEYS_HERE"
upstream_model = "gpt-image-1"
"""


def _settings(tmp_path: Path, database_url: str, registry: str) -> Settings:
    return Settings(
        models=mock_registry(tmp_path, registry),
        run_worker=False,  # the submit is what is tested; no provider is called
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret",
        image_checker="none",
    )


async def _submit(settings: Settings, body: dict[str, Any]) -> tuple[int, dict[str, Any], Any]:
    import httpx

    app = build_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        account = await services.accounts.create_account("a", balance_micros=1_000_000)
        key = await services.accounts.create_key("k", account.id)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                "/api/v3/kwaivgi/kling-image-o1/text-to-image",
                json=body,
                headers={"Authorization": key.token},
            )
        statement = await services.accounts.statement(account.id)
        job = None
        if response.status_code == 200:
            job = await services.execution.current(response.json()["data"]["id"])
    return response.status_code, response.json(), (statement.account.balance_micros, job)


@pytest.mark.anyio
async def test_a_seed_at_a_provider_without_seeds_is_a_400_and_not_charged(
    tmp_path: Path, database_url: str
) -> None:
    registry = (
        '[models."kwaivgi/kling-image-o1"]\ntasks = ["text-to-image"]\nprice = 0.05\n'
        '[[models."kwaivgi/kling-image-o1".targets]]\n' + OPENAI
    )
    status, body, (balance, _) = await _submit(
        _settings(tmp_path, database_url, registry), {"prompt": "a fox", "seed": 7}
    )
    assert status == 400
    assert body["code"] == 400
    assert "seed: openai takes no seed" in body["message"]
    assert balance == 1_000_000


@pytest.mark.anyio
async def test_a_target_that_cannot_serve_the_request_is_left_out_of_its_plan(
    tmp_path: Path, database_url: str
) -> None:
    registry = (
        '[models."kwaivgi/kling-image-o1"]\ntasks = ["text-to-image"]\nprice = 0.05\n'
        '[[models."kwaivgi/kling-image-o1".targets]]\n' + OPENAI + "\n"
        '[[models."kwaivgi/kling-image-o1".targets]]\nbackend = "mock"\n'
    )
    status, body, (balance, job) = await _submit(
        _settings(tmp_path, database_url, registry),
        {"prompt": "a fox", "negative_prompt": "blur"},
    )
    assert status == 200, body
    assert (job.plan, job.target, job.lane) == ((1,), 1, "local")
    assert balance == 950_000

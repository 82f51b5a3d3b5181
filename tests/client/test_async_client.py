"""The SDK's AsyncClient against the real app in-process: every call, every error class,
and retries that never make a second job."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.types import ASGIApp, Receive, Scope, Send

from imagegate import client as sdk
from imagegate.domain.pricing import parse_usd
from imagegate.domain.rates import Limits
from imagegate.settings import Settings
from tests.conftest import MOCK_REGISTRY, Api, mock_registry

pytestmark = pytest.mark.anyio
ROUTE = "kwaivgi/kling-image-o1"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    extra = (
        '\n[models."test/colour"]\nbackend = "tests.worker.backends:ColourBackend"\n'
        'tasks = ["text-to-image"]\n'
    )
    settings.models = mock_registry(tmp_path, MOCK_REGISTRY + "price = 0.01\n" + extra)
    settings.image_checker = "tests.worker.backends:MagentaChecker"
    settings.max_upload_bytes = 64 * 1024
    return settings


class Faults:
    """In front of the app: answers the first ``count`` submits with ``status`` (after
    letting them through to the app when ``forward``), and records every submit's
    Idempotency-Key. A stand-in for a flaky proxy, around the real application."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.status = 503
        self.count = 0
        self.forward = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.keys: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_submit = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/text-to-image")
        )
        if is_submit:
            headers = dict(scope["headers"])
            self.keys.append(headers.get(b"idempotency-key", b"").decode())
        if not is_submit or self.count <= 0:
            await self.app(scope, receive, send)
            return
        self.count -= 1
        if self.forward:

            async def swallow(message: Any) -> None:
                pass

            await self.app(scope, receive, swallow)
        body = b'{"code": %d, "message": "injected", "data": null}' % self.status
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json"), *self.headers],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def faults(api: Api) -> Faults:
    return Faults(api.client._transport.app)  # type: ignore[attr-defined]


@pytest.fixture
async def client(api: Api, faults: Faults) -> AsyncIterator[sdk.AsyncClient]:
    transport = httpx.ASGITransport(app=faults)
    async with httpx.AsyncClient(transport=transport) as http:
        yield sdk.AsyncClient("http://testserver", api.key, http_client=http)


async def key_for(api: Api, *, balance: str | None = None, **key: Any) -> str:
    accounts: Any = api.services.accounts
    account = await accounts.create_account(
        "a", balance_micros=None if balance is None else parse_usd(balance)
    )
    return str((await accounts.create_key("k", account.id, **key)).token)


def with_key(client: sdk.AsyncClient, key: str, **kwargs: Any) -> sdk.AsyncClient:
    return sdk.AsyncClient("http://testserver", key, http_client=client._http, **kwargs)


async def test_run_returns_the_images_ready_to_save(
    client: sdk.AsyncClient, tmp_path: Path
) -> None:
    result = await client.run(ROUTE, prompt="a red circle", n=2, aspect_ratio="1:1", seed=7)
    assert result.prediction.status == "completed" and result.prediction.seed == 7
    paths = result.save_all(tmp_path, stem="circle")
    assert [p.name for p in paths] == ["circle-0.png", "circle-1.png"]
    for path in paths:
        with Image.open(path) as image:
            assert image.size == (1024, 1024)
    assert [i.nsfw for i in result.images] == [False, False]


async def test_submit_wait_cancel_and_get(client: sdk.AsyncClient, api: Api) -> None:
    handle = await client.submit(ROUTE, prompt="p")
    assert handle.status in ("created", "processing", "completed")
    done = await handle.wait(max_wait=20)
    assert done.status == "completed" and (await client.get(handle.id)).id == done.id
    assert (await handle.result()).images[0].data.startswith(b"\x89PNG")
    with pytest.raises(sdk.BadRequestError, match="has already ended"):
        await handle.cancel()


@pytest.mark.parametrize("settings_override", ["no_worker"], indirect=True)
async def test_cancel_and_list_every_page(client: sdk.AsyncClient) -> None:
    ids = [(await client.submit(ROUTE, prompt=f"p{i}")).id for i in range(5)]
    cancelled = await client.cancel(ids[0])
    assert cancelled.status == "failed" and cancelled.error == "cancelled"
    listed = [p.id async for p in client.predictions(page_size=2)]
    assert listed == ids[::-1]
    failed = [p.id async for p in client.predictions(page_size=2, status="failed")]
    assert failed == [ids[0]]


async def test_upload_then_use_it_as_a_reference(client: sdk.AsyncClient, tmp_path: Path) -> None:
    path = tmp_path / "ref.png"
    Image.new("RGB", (300, 200), (0, 90, 200)).save(path)
    url = await client.upload(path)
    assert "/api/v3/media/" in url
    result = await client.run(ROUTE, prompt="like this", images=[url], aspect_ratio="auto")
    assert result.prediction.status == "completed"
    with Image.open(io.BytesIO(result.images[0].data)) as image:
        assert image.size == (1248, 832)  # "auto" took the reference's 3:2


async def test_each_error_class(client: sdk.AsyncClient, api: Api) -> None:
    with pytest.raises(sdk.AuthenticationError) as auth:
        await with_key(client, "ig_nope_nope").get("0" * 32)
    assert auth.value.status_code == 401 and auth.value.code == 401
    scoped = with_key(client, await key_for(api, models=["acme/*"]))
    with pytest.raises(sdk.PermissionDeniedError) as denied:
        await scoped.submit(ROUTE, prompt="p")
    assert not isinstance(denied.value, sdk.InsufficientBalanceError)
    poor = with_key(client, await key_for(api, balance="0.001"))
    with pytest.raises(sdk.InsufficientBalanceError, match=r"costs \$0\.01"):
        await poor.submit(ROUTE, prompt="p")
    with pytest.raises(sdk.NotFoundError):
        await client.get("0" * 32)
    with pytest.raises(sdk.BadRequestError, match="n"):
        await client.submit(ROUTE, prompt="p", n=10)
    with pytest.raises(sdk.RequestTooLargeError):
        await client.upload(b"\0" * 200_000)
    with pytest.raises(sdk.ContentPolicyError) as blocked:
        await client.submit(ROUTE, prompt="a nude portrait")
    assert blocked.value.status_code == 400 and blocked.value.code == 503
    with pytest.raises(sdk.OutputBlockedError) as output:
        await client.run("test/colour", prompt="magenta")
    assert output.value.prediction.error == "content blocked due to safety concerns"
    assert isinstance(output.value, sdk.ContentPolicyError)
    limited = with_key(
        client, await key_for(api, limits=Limits(rate_limit="1/minute")), max_retries=0
    )
    await limited.submit(ROUTE, prompt="p")
    with pytest.raises(sdk.RateLimitError) as rate:
        await limited.submit(ROUTE, prompt="p")
    assert rate.value.retry_after is not None and 0 < rate.value.retry_after <= 60
    nowhere = sdk.AsyncClient("http://127.0.0.1:9", "k", max_retries=0)
    with pytest.raises(sdk.APIConnectionError):
        await nowhere.models()
    await nowhere.close()


async def test_a_server_error_after_retries_is_a_server_error(
    client: sdk.AsyncClient, faults: Faults
) -> None:
    faults.status, faults.count = 500, 10
    quick = with_key(client, client.config.api_key or "", max_retries=1)
    quick.config.retry = quick.config.retry.__class__(max_retries=1, initial_delay=0.01)
    with pytest.raises(sdk.ServerError) as error:
        await quick.submit(ROUTE, prompt="p")
    assert error.value.status_code == 500 and len(faults.keys) == 2


@pytest.mark.parametrize("forward", [False, True])
async def test_503_twice_then_success_makes_one_job(
    client: sdk.AsyncClient, faults: Faults, forward: bool
) -> None:
    """With ``forward``, the first two submits reached the server and made the job, and
    only their answers were lost: the retries must still not make a second job."""
    faults.status, faults.count, faults.forward = 503, 2, forward
    client.config.retry = client.config.retry.__class__(max_retries=2, initial_delay=0.01)
    prediction = await client.submit(ROUTE, prompt="once")
    assert len(faults.keys) == 3 and len(set(faults.keys)) == 1 and faults.keys[0]
    assert [p.id async for p in client.predictions()] == [prediction.id]


async def test_a_429_is_retried_after_its_retry_after(
    client: sdk.AsyncClient, faults: Faults
) -> None:
    faults.status, faults.count, faults.headers = 429, 1, [(b"retry-after", b"1")]
    started = anyio_time()
    prediction = await client.submit(ROUTE, prompt="p")
    assert anyio_time() - started >= 1.0
    assert [p.id async for p in client.predictions()] == [prediction.id]


def anyio_time() -> float:
    import time

    return time.monotonic()

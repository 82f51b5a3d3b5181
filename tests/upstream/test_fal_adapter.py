"""The fal adapter against a contract server of fal's queue API on 127.0.0.1."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from imagegate.backends.upstream.adapters import adapter_for
from imagegate.backends.upstream.base import Finished, Pending, Submitted, UpstreamError
from imagegate.backends.upstream.fal import FalAdapter, requests_path
from tests.upstream.provider_servers.base import (
    SUBMIT_FAULTS,
    Faults,
    http_client,
    job_request,
    references,
    running,
    target,
)
from tests.upstream.provider_servers.fal import FalServer

pytestmark = pytest.mark.anyio
MODEL = "fal-ai/flux/dev"


@pytest.fixture(scope="module")
def running_server() -> Iterator[FalServer]:
    with running(FalServer()) as server:
        yield server


@pytest.fixture
def server(running_server: FalServer) -> FalServer:
    running_server.reset()
    return running_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client() as client:
        yield client


@pytest.fixture
def adapter(server: FalServer, client: httpx.AsyncClient) -> FalAdapter:
    made = adapter_for(target("fal", server.url, MODEL), client)
    assert isinstance(made, FalAdapter)
    return made


def test_requests_live_under_the_app_not_the_endpoint_path() -> None:
    assert requests_path("fal-ai/flux/dev") == "fal-ai/flux/requests"
    assert requests_path("fal-ai/fast-sdxl") == "fal-ai/fast-sdxl/requests"
    assert requests_path("fal-ai/flux-pro/kontext/max/multi") == "fal-ai/flux-pro/requests"
    assert requests_path("workflows/acme/pipeline/run") == "workflows/acme/pipeline/requests"


async def test_submit_maps_the_contracts_params_onto_fals_inputs(
    server: FalServer, adapter: FalAdapter
) -> None:
    refs = references(2)
    request = job_request(n=3, seed=42, negative_prompt="blurry", references=refs)
    assert isinstance(await adapter.submit("k1", request), Submitted)
    (received,) = server.received
    assert received.path == f"/{MODEL}"
    assert received.headers["authorization"] == "Key k1"
    body = received.json
    assert body["prompt"] == request.prompt
    assert body["image_size"] == {"width": 1360, "height": 768}
    assert (body["num_images"], body["seed"], body["negative_prompt"]) == (3, 42, "blurry")
    assert body["output_format"] == "png"
    assert [base64.b64decode(uri.split(",", 1)[1]) for uri in body["image_urls"]] == [
        ref.data for ref in refs
    ]
    assert all(uri.startswith("data:image/png;base64,") for uri in body["image_urls"])


async def test_unset_negative_prompt_and_references_are_left_out(
    server: FalServer, adapter: FalAdapter
) -> None:
    await adapter.submit("k1", job_request(output_format="jpeg"))
    body = server.received[0].json
    assert "negative_prompt" not in body and "image_urls" not in body
    assert body["output_format"] == "jpeg"


async def test_a_job_is_pending_until_done_then_finished_with_its_images(
    server: FalServer, adapter: FalAdapter, client: httpx.AsyncClient
) -> None:
    server.delay_s = 5
    server.faults.nsfw_first = True
    submitted = await adapter.submit("k1", job_request(n=2))
    assert isinstance(submitted, Submitted)
    assert isinstance(await adapter.poll("k1", submitted.upstream_id), Pending)
    server.advance(5)
    finished = await adapter.poll("k1", submitted.upstream_id)
    assert isinstance(finished, Finished)
    assert finished.nsfw == [True, False]
    assert len(finished.outputs) == 2
    for output in finished.outputs:
        assert isinstance(output, str) and output.startswith(server.url)
        assert (await client.get(output)).content.startswith(b"\x89PNG")


@pytest.mark.parametrize(("changes", "kind", "retry_after_s"), SUBMIT_FAULTS)
async def test_a_refused_submit_raises_its_kind(
    server: FalServer,
    adapter: FalAdapter,
    changes: dict[str, Any],
    kind: str,
    retry_after_s: float | None,
) -> None:
    server.faults = Faults(**changes)
    with pytest.raises(UpstreamError) as raised:
        await adapter.submit("k1", job_request())
    assert raised.value.kind == kind
    assert raised.value.retry_after_s == retry_after_s


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, "failed"), (422, "failed"), (None, "content")],
    ids=["model-error-500", "model-error-422", "content-checker"],
)
async def test_a_failed_result_raises_at_poll(
    server: FalServer, adapter: FalAdapter, status: int | None, kind: str
) -> None:
    if status is None:
        server.faults.block_content = True
    else:
        server.faults.job_error, server.faults.job_error_status = "CUDA out of memory", status
    submitted = await adapter.submit("k1", job_request())
    assert isinstance(submitted, Submitted)
    with pytest.raises(UpstreamError) as raised:
        await adapter.poll("k1", submitted.upstream_id)
    assert raised.value.kind == kind


async def test_a_key_refused_while_polling_is_a_key_error(
    server: FalServer, adapter: FalAdapter
) -> None:
    submitted = await adapter.submit("k1", job_request())
    assert isinstance(submitted, Submitted)
    server.faults.bad_keys.add("k1")
    with pytest.raises(UpstreamError) as raised:
        await adapter.poll("k1", submitted.upstream_id)
    assert raised.value.kind == "key"


async def test_cancel_reaches_the_queue(server: FalServer, adapter: FalAdapter) -> None:
    server.delay_s = 60
    submitted = await adapter.submit("k1", job_request())
    assert isinstance(submitted, Submitted)
    await adapter.cancel("k1", submitted.upstream_id)
    assert server.cancels == [submitted.upstream_id]
    assert server.jobs[submitted.upstream_id].canceled

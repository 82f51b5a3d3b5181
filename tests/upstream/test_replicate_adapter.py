"""The Replicate adapter against a contract server of Replicate's predictions API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from imagegate.backends.upstream.adapters import adapter_for
from imagegate.backends.upstream.base import Finished, Pending, Submitted, UpstreamError
from imagegate.backends.upstream.replicate import ReplicateAdapter
from tests.upstream.provider_servers.base import (
    SUBMIT_FAULTS,
    Faults,
    http_client,
    job_request,
    references,
    running,
    target,
)
from tests.upstream.provider_servers.replicate import ReplicateServer

pytestmark = pytest.mark.anyio
MODEL = "black-forest-labs/flux-schnell"
VERSION = "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"


@pytest.fixture(scope="module")
def running_server() -> Iterator[ReplicateServer]:
    with running(ReplicateServer()) as server:
        yield server


@pytest.fixture
def server(running_server: ReplicateServer) -> ReplicateServer:
    running_server.reset()
    return running_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client() as client:
        yield client


def _adapter(server: ReplicateServer, client: httpx.AsyncClient, model: str) -> ReplicateAdapter:
    made = adapter_for(target("replicate", server.url, model), client)
    assert isinstance(made, ReplicateAdapter)
    return made


@pytest.fixture
def adapter(server: ReplicateServer, client: httpx.AsyncClient) -> ReplicateAdapter:
    return _adapter(server, client, MODEL)


async def test_submit_maps_the_contracts_params_onto_the_models_inputs(
    server: ReplicateServer, adapter: ReplicateAdapter
) -> None:
    refs = references(2)
    request = job_request(n=3, seed=42, negative_prompt="blurry", references=refs)
    assert isinstance(await adapter.submit("k1", request), Submitted)
    (received,) = server.received
    assert received.path == f"/v1/models/{MODEL}/predictions"
    assert received.headers["authorization"] == "Bearer k1"
    inputs = received.json["input"]
    assert set(received.json) == {"input"}
    assert inputs["prompt"] == request.prompt
    assert (inputs["width"], inputs["height"], inputs["aspect_ratio"]) == (1360, 768, "16:9")
    assert (inputs["num_outputs"], inputs["seed"], inputs["negative_prompt"]) == (3, 42, "blurry")
    assert inputs["output_format"] == "png"
    # One input image: the first reference.
    assert base64.b64decode(inputs["image"].split(",", 1)[1]) == refs[0].data


@pytest.mark.parametrize(
    ("width", "height", "aspect", "output_format", "sent_format"),
    [(1440, 720, "16:9", "jpeg", "jpg"), (1024, 1024, "1:1", "webp", "webp")],
)
async def test_the_aspect_ratio_and_format_are_ones_the_flux_models_take(
    server: ReplicateServer,
    adapter: ReplicateAdapter,
    width: int,
    height: int,
    aspect: str,
    output_format: str,
    sent_format: str,
) -> None:
    request = job_request(width=width, height=height, output_format=output_format)
    await adapter.submit("k1", request)
    inputs = server.received[0].json["input"]
    assert (inputs["aspect_ratio"], inputs["output_format"]) == (aspect, sent_format)
    assert "negative_prompt" not in inputs and "image" not in inputs


async def test_a_pinned_version_is_created_through_the_predictions_endpoint(
    server: ReplicateServer, client: httpx.AsyncClient
) -> None:
    adapter = _adapter(server, client, f"stability-ai/sdxl:{VERSION}")
    submitted = await adapter.submit("k1", job_request())
    assert isinstance(submitted, Submitted)
    assert server.received[0].path == "/v1/predictions"
    assert server.received[0].json["version"] == VERSION
    assert server.versions[submitted.upstream_id] == VERSION


@pytest.mark.parametrize("single_output", [False, True], ids=["list", "one-url"])
async def test_a_prediction_is_pending_until_it_succeeds_with_its_output(
    server: ReplicateServer,
    adapter: ReplicateAdapter,
    client: httpx.AsyncClient,
    single_output: bool,
) -> None:
    server.delay_s, server.single_output = 3, single_output
    submitted = await adapter.submit("k1", job_request(n=1 if single_output else 2))
    assert isinstance(submitted, Submitted)
    assert isinstance(await adapter.poll("k1", submitted.upstream_id), Pending)
    server.advance(3)
    finished = await adapter.poll("k1", submitted.upstream_id)
    assert isinstance(finished, Finished)
    assert len(finished.outputs) == (1 if single_output else 2)
    assert finished.nsfw == []
    for output in finished.outputs:
        assert isinstance(output, str)
        assert (await client.get(output)).content.startswith(b"\x89PNG")


@pytest.mark.parametrize(("changes", "kind", "retry_after_s"), SUBMIT_FAULTS)
async def test_a_refused_submit_raises_its_kind(
    server: ReplicateServer,
    adapter: ReplicateAdapter,
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
    ("changes", "kind"),
    [({"job_error": "CUDA out of memory"}, "failed"), ({"block_content": True}, "content")],
    ids=["failed", "nsfw"],
)
async def test_a_failed_prediction_raises_at_poll(
    server: ReplicateServer, adapter: ReplicateAdapter, changes: dict[str, Any], kind: str
) -> None:
    server.faults = Faults(**changes)
    submitted = await adapter.submit("k1", job_request())
    assert isinstance(submitted, Submitted)
    with pytest.raises(UpstreamError) as raised:
        await adapter.poll("k1", submitted.upstream_id)
    assert raised.value.kind == kind


async def test_cancel_reaches_replicate_and_a_canceled_prediction_is_failed(
    server: ReplicateServer, adapter: ReplicateAdapter
) -> None:
    server.delay_s = 60
    submitted = await adapter.submit("k1", job_request())
    assert isinstance(submitted, Submitted)
    await adapter.cancel("k1", submitted.upstream_id)
    assert server.cancels == [submitted.upstream_id]
    with pytest.raises(UpstreamError) as raised:
        await adapter.poll("k1", submitted.upstream_id)
    assert raised.value.kind == "failed"

"""The OpenAI adapter against a contract server of OpenAI's Images API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from imagegate.backends.upstream.adapters import adapter_for
from imagegate.backends.upstream.base import Finished, UpstreamError
from imagegate.backends.upstream.openai import OpenAIAdapter, size_for
from imagegate.domain.providers import CAPABILITIES
from tests.upstream.provider_servers.base import (
    SUBMIT_FAULTS,
    Faults,
    http_client,
    job_request,
    references,
    running,
    target,
)
from tests.upstream.provider_servers.openai import OpenAIServer

pytestmark = pytest.mark.anyio
MODEL = "gpt-image-1"


@pytest.fixture(scope="module")
def running_server() -> Iterator[OpenAIServer]:
    with running(OpenAIServer()) as server:
        yield server


@pytest.fixture
def server(running_server: OpenAIServer) -> OpenAIServer:
    running_server.reset()
    return running_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client() as client:
        yield client


@pytest.fixture
def adapter(server: OpenAIServer, client: httpx.AsyncClient) -> OpenAIAdapter:
    made = adapter_for(target("openai", server.url, MODEL), client)
    assert isinstance(made, OpenAIAdapter)
    return made


@pytest.mark.parametrize(
    ("width", "height", "size"),
    [
        (1024, 1024, "1024x1024"),
        (1360, 768, "1536x1024"),
        (768, 1360, "1024x1536"),
        (1152, 864, "1536x1024"),  # 4:3 is nearer 3:2 than square
        (864, 1152, "1024x1536"),
        (1440, 720, "1536x1024"),
        (2048, 2048, "1024x1024"),
    ],
)
def test_the_size_asked_is_the_supported_one_nearest_in_shape(
    width: int, height: int, size: str
) -> None:
    assert size_for(width, height) == size


def test_capabilities_refuse_a_seed_and_a_negative_prompt() -> None:
    caps = CAPABILITIES["openai"]
    assert not caps.seed and not caps.negative_prompt and caps.max_n == 10


async def test_a_generation_answers_finished_with_the_images_at_submit(
    server: OpenAIServer, adapter: OpenAIAdapter
) -> None:
    finished = await adapter.submit("sk-1", job_request(n=3, output_format="webp"))
    assert isinstance(finished, Finished)
    assert len(finished.outputs) == 3 and finished.nsfw == []
    assert all(isinstance(o, bytes) and o.startswith(b"\x89PNG") for o in finished.outputs)
    assert list(server.images.values()) == finished.outputs
    (received,) = server.received
    assert received.path == "/v1/images/generations"
    assert received.headers["authorization"] == "Bearer sk-1"
    # Only documented parameters: the server, like OpenAI, refuses any other.
    assert received.json == {
        "model": MODEL,
        "prompt": job_request().prompt,
        "n": 3,
        "size": "1536x1024",
        "output_format": "webp",
    }


async def test_references_go_to_edits_as_image_parts(
    server: OpenAIServer, adapter: OpenAIAdapter
) -> None:
    refs = references(3)
    finished = await adapter.submit("sk-1", job_request(n=2, references=refs))
    assert isinstance(finished, Finished) and len(finished.outputs) == 2
    (received,) = server.received
    assert received.path == "/v1/images/edits"
    assert received.headers["content-type"].startswith("multipart/form-data")
    assert [(name, kind, data) for name, kind, data in received.files] == [
        ("image[]", "image/png", ref.data) for ref in refs
    ]
    assert received.form == {
        "model": [MODEL],
        "prompt": [job_request().prompt],
        "n": ["2"],
        "size": ["1536x1024"],
        "output_format": ["png"],
    }


@pytest.mark.parametrize(("changes", "kind", "retry_after_s"), SUBMIT_FAULTS)
async def test_a_refused_submit_raises_its_kind(
    server: OpenAIServer,
    adapter: OpenAIAdapter,
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
    [
        ({"block_content": True}, "content"),
        ({"job_error": "The server had an error processing your request."}, "transient"),
    ],
    ids=["moderation-blocked", "server-error"],
)
async def test_a_failed_generation_raises_at_submit(
    server: OpenAIServer, adapter: OpenAIAdapter, changes: dict[str, Any], kind: str
) -> None:
    server.faults = Faults(**changes)
    with pytest.raises(UpstreamError) as raised:
        await adapter.submit("k1", job_request())
    assert raised.value.kind == kind


async def test_poll_is_never_expected_and_cancel_sends_nothing(
    server: OpenAIServer, adapter: OpenAIAdapter
) -> None:
    with pytest.raises(UpstreamError) as raised:
        await adapter.poll("k1", "anything")
    assert raised.value.kind == "failed"
    await adapter.cancel("k1", "anything")
    assert server.received == []

"""What every provider's contract server shares: jobs kept in memory that finish
``delay_s`` after they were made on the server's own clock (which a test moves, so nothing
sleeps), PNGs it "made" served from itself, every submit recorded, the faults a test can
switch on, and running it with uvicorn on 127.0.0.1 in a background thread."""

from __future__ import annotations

import io
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagegate.backends.upstream.base import Reference, UpstreamRequest
from imagegate.domain.providers import UpstreamOptions

STARTUP_TIMEOUT_S = 5.0
# Made once: httpx would load the CA bundle again for every client (0.15 s each), and
# these servers speak plain HTTP anyway.
_TLS = ssl.create_default_context()


@dataclass
class Faults:
    """What goes wrong: each provider server answers these in its own documented way."""

    submit_status: int | None = None  # every submit answered with this status
    retry_after: str | None = None  # sent with submit_status
    job_error: str | None = None  # every job ends failed with this reason
    job_error_status: int = 500  # where the API answers a failed job with a status
    block_content: bool = False  # the content policy refuses every job
    nsfw_first: bool = False  # the first image of a job is flagged NSFW
    bad_keys: set[str] = field(default_factory=set)  # 401
    broke_keys: set[str] = field(default_factory=set)  # out of credit or quota


# Submits refused before any job exists, the same for every provider (each server
# answers them its own documented way): the Faults set, the kind, the Retry-After.
SUBMIT_FAULTS = [
    pytest.param({"submit_status": 500}, "transient", None, id="500"),
    pytest.param({"submit_status": 429, "retry_after": "7"}, "rate", 7.0, id="429"),
    pytest.param({"bad_keys": {"k1"}}, "key", None, id="401"),
    pytest.param({"broke_keys": {"k1"}}, "key", None, id="out-of-credit"),
]


@dataclass
class Received:
    """One submit as the server got it."""

    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, list[str]] = field(default_factory=dict)
    files: list[tuple[str, str, bytes]] = field(default_factory=list)  # field, type, bytes


@dataclass
class Job:
    id: str
    n: int
    made_at: float
    app: str = ""  # fal: the app its requests live under
    canceled: bool = False


class ProviderServer:
    def __init__(self) -> None:
        self.url = ""
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        self.faults = Faults()
        self.delay_s = 0.0
        self.clock = 0.0
        self.received: list[Received] = []
        self.jobs: dict[str, Job] = {}
        self.cancels: list[str] = []
        self.images: dict[str, bytes] = {}

    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def app(self) -> Starlette:
        return Starlette(routes=[*self.routes(), Route("/files/{name}", self._file)])

    async def record(self, request: Request) -> Received:
        headers = {name.lower(): value for name, value in request.headers.items()}
        received = Received(request.url.path, headers)
        if request.headers.get("content-type", "").startswith("multipart/"):
            async with request.form() as form:
                for name, value in form.multi_items():
                    if isinstance(value, str):
                        received.form.setdefault(name, []).append(value)
                    else:
                        data = await value.read()
                        received.files.append((name, value.content_type or "", data))
        else:
            received.json = await request.json()
        self.received.append(received)
        return received

    def key_of(self, request: Request, scheme: str) -> str | None:
        """The key of ``Authorization: <scheme> <key>``, None when there is none."""
        given, _, key = request.headers.get("authorization", "").partition(" ")
        return key if given == scheme and key else None

    def new_job(self, n: int, app: str = "") -> Job:
        job = Job(f"job-{next(self._ids)}", n, self.clock, app)
        self.jobs[job.id] = job
        return job

    def done(self, job: Job) -> bool:
        return self.clock >= job.made_at + self.delay_s

    def png(self, name: str, index: int) -> bytes:
        """A small PNG, a different colour each index, kept to serve at ``/files/{name}``."""
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (40 * index % 256, 90, 160)).save(buffer, format="PNG")
        self.images[name] = buffer.getvalue()
        return self.images[name]

    def image_urls(self, job: Job) -> list[str]:
        names = [f"{job.id}-{index}.png" for index in range(job.n)]
        for index, name in enumerate(names):
            self.png(name, index)
        return [f"{self.url}/files/{name}" for name in names]

    async def _file(self, request: Request) -> Response:
        data = self.images.get(request.path_params["name"])
        if data is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(data, media_type="image/png")


Server = TypeVar("Server", bound=ProviderServer)


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """``server`` answering on a free port of 127.0.0.1 until the block ends."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        server.app(), lifespan="off", ws="none", http="h11", log_level="warning"
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(
        target=uvicorn_server.run, kwargs={"sockets": [listener]}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not uvicorn_server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            uvicorn_server.should_exit = True
            listener.close()
            raise RuntimeError("the provider server did not start")
        time.sleep(0.01)  # a sync fixture waiting for a thread, not async code
    server.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        yield server
    finally:
        uvicorn_server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        listener.close()


def job_request(**changes: Any) -> UpstreamRequest:
    """A 16:9 1k text-to-image job of two images; ``changes`` replace its fields."""
    fields: dict[str, Any] = {
        "task": "text-to-image",
        "prompt": "a red circle on a white square",
        "n": 2,
        "width": 1360,
        "height": 768,
        "aspect_ratio": "16:9",
        "resolution": "1k",
        "seed": 1234,
        "client_ref": "job-1:0",
    }
    return UpstreamRequest(**{**fields, **changes})


def references(count: int) -> list[Reference]:
    """``count`` distinct reference images (PNG bytes)."""
    made = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4), (index * 60, 0, 0)).save(buffer, format="PNG")
        made.append(Reference(buffer.getvalue(), "image/png"))
    return made


def target(provider: str, url: str, model: str, **changes: Any) -> UpstreamOptions:
    return UpstreamOptions(
        provider=provider,
        base_url=url,
        api_keys_env="UPSTREAM_KEYS",
        upstream_model=model,
        submit_timeout_s=5,
        **changes,
    )


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=5, verify=_TLS)

"""Two real imagegate servers: an "upstream" that plays the provider (mock models with
delays and failures on cue, its own SQLite database) and a gateway whose route forwards to
it, on the test's database (SQLite, and PostgreSQL when configured). Plus a fault proxy
that forwards to the upstream and loses the answer to a submit, as a gateway's 504 does.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.e2e.conftest import KEY_TIMEOUT_S, ServerFactory, ServerProcess, imagegate_command
from tests.upstream.provider_servers.base import ProviderServer

ADMIN_KEY = "admin-key-for-upstream-tests-0123456789"
KEYS_ENV = "UPSTREAM_TEST_KEYS"
SUBMIT = "/api/v3/kwaivgi/kling-image-o1/text-to-image"

# The provider's models: "fast" answers at once, "slow" takes 3 s (long enough to kill the
# gateway while it waits), "flaky" fails every prompt that says "flaky".
UPSTREAM_MODELS = """\
[models."up/fast"]
backend = "mock"
tasks = ["text-to-image", "image-to-image"]
price = 0.01

[models."up/slow"]
backend = "mock"
tasks = ["text-to-image"]
delay_ms = 3000

[models."up/flaky"]
backend = "mock"
tasks = ["text-to-image"]
fail_marker = "flaky"
"""


def upstream_target(base_url: str, model: str, *, provider: str = "imagegate", **extra: Any) -> str:
    lines = [
        f'backend = "upstream"\nprovider = "{provider}"\nbase_url = "{base_url}"',
        f'api_keys_env = "{KEYS_ENV}"\nupstream_model = "{model}"\npoll_interval_s = 0.1',
        "max_poll_interval_s = 0.3\nsubmit_timeout_s = 10",
    ]
    lines += [f"{name} = {value}" for name, value in extra.items()]
    return "\n".join(lines) + "\n"


def routed(*targets: str, head: str = "") -> str:
    text = '[models."kwaivgi/kling-image-o1"]\ntasks = ["text-to-image", "image-to-image"]\n'
    text += head
    for target in targets:
        text += f'\n[[models."kwaivgi/kling-image-o1".targets]]\n{target}'
    return text


def start_upstream(make_server: ServerFactory) -> ServerProcess:
    """The provider: its own SQLite database, apart from the gateway's."""
    root = make_server.tmp_path / "upstream"
    server = ServerProcess(
        root,
        f"sqlite+aiosqlite:///{root / 'upstream.db'}",
        models=UPSTREAM_MODELS,
        # Its images are the gateway's to check; none here keeps the provider quick.
        env={
            "IMAGEGATE_WORKER_CONCURRENCY": "4",
            "IMAGEGATE_IMAGE_CHECKER": "none",
            "IMAGEGATE_WORKER_ISOLATION": "thread",
        },
    )
    make_server.servers.append(server)
    server.start()
    assert server.key
    # Its first job starts its model process: done now, not inside a test's timings.
    warm = httpx.post(
        f"{server.url}/api/v3/up/fast/text-to-image",
        json={"prompt": "warm up", "enable_sync_mode": True},
        headers={"Authorization": "Bearer " + server.create_key("warm-up")},
        timeout=60,
    )
    assert warm.json()["data"]["status"] == "completed", warm.text
    return server


def start_gateway(
    make_server: ServerFactory, models: str, keys: list[str], **env: str
) -> ServerProcess:
    return make_server(
        models=models,
        env={
            KEYS_ENV: ",".join(keys),
            "IMAGEGATE_ADMIN_KEY": ADMIN_KEY,
            "IMAGEGATE_LEASE_S": "1.5",
            # Quick to start: mock models need no process of their own, and the output
            # check is asked for by the one test that looks at it.
            "IMAGEGATE_WORKER_ISOLATION": "thread",
            "IMAGEGATE_IMAGE_CHECKER": "none",
            **env,
        },
    )


def cli(server: ServerProcess, *args: str) -> str:
    """An ``imagegate`` command against ``server``'s database; its last line of output."""
    done = subprocess.run(
        [*imagegate_command(), *args],
        env=server.environ(),
        cwd=server.root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=KEY_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout.decode().strip().splitlines()[-1].strip()


def submit(server: ServerProcess, prompt: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}{SUBMIT}", json={"prompt": prompt, **body}, headers=server.auth, timeout=60
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def result(server: ServerProcess, job_id: str, wait: float = 0) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/api/v3/predictions/{job_id}/result",
        params={"wait": wait} if wait else None,
        headers=server.auth,
        timeout=wait + 10,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def ended(server: ServerProcess, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data = result(server, job_id, wait=2)
        if data["status"] in ("completed", "failed"):
            return data
        assert time.monotonic() < deadline, f"{job_id} still {data['status']} after {timeout}s"


def routing(server: ServerProcess, job_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/admin/v1/predictions/{job_id}",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def upstream_jobs(upstream: ServerProcess, key: str) -> list[dict[str, Any]]:
    """Every job the provider got from ``key``'s account, newest first."""
    response = httpx.get(
        f"{upstream.url}/api/v3/predictions",
        params={"page_size": 100},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]["items"]
    return items


class LosingProxy(ProviderServer):
    """Forwards everything to ``target``; the first ``lose`` submits reach it and are
    answered there, but the client gets a 504 instead, as from a gateway that timed out."""

    def __init__(self, target: str, lose: int = 1) -> None:
        self.target = target
        self.lose = lose
        self.lost = 0
        super().__init__()

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "PUT"])]
        )

    async def _forward(self, request: Request) -> Response:
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("authorization", "content-type", "idempotency-key")
        }
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.request(
                request.method,
                f"{self.target}{request.url.path}",
                params=request.query_params,
                content=await request.body(),
                headers=headers,
            )
        submitted = request.method == "POST" and "/predictions/" not in request.url.path
        if submitted and self.lost < self.lose:
            self.lost += 1
            return JSONResponse({"message": "gateway timeout"}, status_code=504)
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
        )

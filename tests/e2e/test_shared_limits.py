"""Two `imagegate serve` processes sharing a database and Redis enforce one rate limit
between them, and one balance."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import ServerFactory, imagegate_command

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("IMAGEGATE_TEST_REDIS_URL", "")
SUBMIT = "/api/v3/kwaivgi/kling-image-o1/text-to-image"


@pytest.mark.skipif(not REDIS_URL, reason="IMAGEGATE_TEST_REDIS_URL is not set; needs Redis")
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_server_processes_share_one_limit_through_redis(make_server: ServerFactory) -> None:
    env = {"IMAGEGATE_REDIS_URL": REDIS_URL, "IMAGEGATE_RUN_WORKER": "false"}
    first = make_server(env=env)
    done = subprocess.run(
        [
            *imagegate_command(), "keys", "create", "--name", "limited",
            "--rate-limit", "5/minute",
        ],
        env=first.environ(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    key = done.stdout.strip().splitlines()[-1]
    second = make_server(env=env, data_dir=first.data_dir, key=first.key)

    def submit(i: int) -> httpx.Response:
        server = first if i % 2 else second
        return httpx.post(
            server.url + SUBMIT,
            json={"prompt": f"p{i}"},
            headers={"Authorization": key},
            timeout=30,
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(submit, range(12)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 5 + [429] * 7
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["code"] == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert first.log_problems() == [] and second.log_problems() == []

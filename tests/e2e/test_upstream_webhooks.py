"""A provider's webhook wakes the gateway's worker at once: with polls 30 s apart, a job
that ends at Replicate (a contract server of its API, which calls webhooks as Replicate
does) completes at the gateway within seconds of the call; a call with a wrong token is a
404 and wakes nothing."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.upstream_setup import (
    ADMIN_KEY,
    KEYS_ENV,
    ended,
    routed,
    routing,
    submit,
)
from tests.upstream.provider_servers.base import running
from tests.upstream.provider_servers.replicate import ReplicateServer

pytestmark = pytest.mark.e2e

REPLICATE = f"""\
backend = "upstream"
provider = "replicate"
base_url = "{{url}}"
api_keys_env = "{KEYS_ENV}"
upstream_model = "black-forest-labs/flux-schnell"
poll_interval_s = 30
max_poll_interval_s = 30
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_providers_webhook_ends_the_wait_at_once(make_server: ServerFactory) -> None:
    with running(ReplicateServer()) as provider:
        provider.delay_s = 5
        gateway = make_server(
            models=routed(REPLICATE.format(url=provider.url)),
            env={
                KEYS_ENV: "r8_test_key",
                "IMAGEGATE_ADMIN_KEY": ADMIN_KEY,
                "IMAGEGATE_WORKER_ISOLATION": "thread",
                "IMAGEGATE_IMAGE_CHECKER": "none",
            },
            start=False,
        )
        gateway.extra_env["IMAGEGATE_PUBLIC_BASE_URL"] = gateway.url
        gateway.start()
        job_id = submit(gateway, "a webhook", n=2)["id"]
        deadline = time.monotonic() + 20
        while routing(gateway, job_id)["upstream_state"] != "submitted":
            assert time.monotonic() < deadline, "the job never reached the provider"
            time.sleep(0.05)
        hook = provider.received[0].json["webhook"]
        assert hook.startswith(f"{gateway.url}/upstream/v1/hooks/{job_id}/")
        wrong = httpx.post(f"{gateway.url}/upstream/v1/hooks/{job_id}/00ff", timeout=10)
        assert wrong.status_code == 404
        time.sleep(1.0)  # past the first poll: the worker now sleeps 30 s
        provider.advance(5)  # the job ends at the provider, which calls the webhook
        called = time.monotonic()
        data = ended(gateway, job_id, timeout=20)
        assert data["status"] == "completed", data
        assert provider.webhook_answers == [200]
        assert time.monotonic() - called < 15  # the 30 s poll did not have to come round
        assert len(data["outputs"]) == 2

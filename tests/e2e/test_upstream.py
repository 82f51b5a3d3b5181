"""A gateway imagegate forwarding its route to an upstream imagegate (the provider), both
real processes on 127.0.0.1: exactly one upstream job per customer job through failover,
a SIGKILL while waiting, a lost submit answer and a key out of credit; and spill-over from
a busy local model. The fault tests run with the gateway on SQLite and on PostgreSQL; the
others, whose database work is the same as theirs, on SQLite (each costs two servers)."""

from __future__ import annotations

import io
import signal
import subprocess
import time

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import ServerFactory, ServerProcess, imagegate_command
from tests.e2e.upstream_setup import (
    LosingProxy,
    cli,
    ended,
    result,
    routed,
    routing,
    start_gateway,
    start_upstream,
    submit,
    upstream_jobs,
    upstream_target,
)
from tests.upstream.provider_servers.base import running

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_forwarded_job_completes_with_the_providers_images_stored_here(
    make_server: ServerFactory,
) -> None:
    upstream = start_upstream(make_server)
    gateway = start_gateway(
        make_server,
        routed(upstream_target(upstream.url, "up/fast", cost="0.004")),
        [upstream.key],
        IMAGEGATE_IMAGE_CHECKER="auto",  # the provider's images pass our own check too
    )
    data = submit(gateway, "a lighthouse", n=2, aspect_ratio="1:1", enable_sync_mode=True)
    assert data["status"] == "completed", data
    assert len(data["outputs"]) == 2
    for url in data["outputs"]:
        assert url.startswith(gateway.url)  # ours now: signed, retained, checked here
        image = Image.open(io.BytesIO(httpx.get(url, timeout=10).content))
        assert image.size == (1024, 1024)
    where = routing(gateway, data["id"])
    assert where["ran_on"] == "imagegate"
    assert where["cost"] == "0.008"
    upstream_side = upstream_jobs(upstream, upstream.key)
    assert len(upstream_side) == 1
    assert where["upstream_id"] == upstream_side[0]["id"]
    assert upstream_side[0]["status"] == "completed"


def test_a_provider_that_fails_the_job_hands_it_to_the_next_target_charged_once(
    make_server: ServerFactory,
) -> None:
    upstream = start_upstream(make_server)
    gateway = start_gateway(
        make_server,
        routed(
            upstream_target(upstream.url, "up/flaky"),
            upstream_target(upstream.url, "up/fast"),
            head="price = 0.05\n",
        ),
        [upstream.key],
    )
    account = cli(gateway, "accounts", "create", "--name", "customer", "--balance", "1.00")
    customer_key = cli(gateway, "keys", "create", "--name", "c", "--account", account)
    response = httpx.post(
        f"{gateway.url}/api/v3/kwaivgi/kling-image-o1/text-to-image",
        json={"prompt": "a flaky bridge"},
        headers={"Authorization": f"Bearer {customer_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["data"]["id"]
    gateway._key = customer_key  # read it as its owner
    data = ended(gateway, job_id)
    assert data["status"] == "completed", data
    where = routing(gateway, job_id)
    assert (where["hop"], where["target"], where["ran_on"]) == (1, 1, "imagegate#2")
    statuses = sorted(job["status"] for job in upstream_jobs(upstream, upstream.key))
    assert statuses == ["completed", "failed"]  # one job at each target, no repeats
    shown = cli(gateway, "accounts", "show", account)
    balance = httpx.get(
        f"{gateway.url}/admin/v1/accounts/{account}",
        headers={"Authorization": "Bearer admin-key-for-upstream-tests-0123456789"},
        timeout=10,
    ).json()["data"]
    assert balance["balance"] == "0.95", (balance, shown)  # one charge, no refund
    report = _usage(gateway)
    assert "imagegate#2" in report and "$0.05" in report, report


def _usage(server: ServerProcess) -> str:
    done = subprocess.run(
        [*imagegate_command(), "usage", "--by", "route", "--since", "1d"],
        env=server.environ(),
        cwd=server.root,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def test_a_gateway_killed_while_waiting_resumes_the_same_upstream_job(
    make_server: ServerFactory,
) -> None:
    upstream = start_upstream(make_server)
    gateway = start_gateway(
        make_server, routed(upstream_target(upstream.url, "up/slow")), [upstream.key]
    )
    job_id = submit(gateway, "a slow river")["id"]
    deadline = time.monotonic() + 20
    while routing(gateway, job_id)["upstream_state"] != "submitted":
        assert time.monotonic() < deadline, "the job never reached the provider"
        time.sleep(0.05)
    gateway.kill(signal.SIGKILL)
    gateway.start()
    data = ended(gateway, job_id)
    assert data["status"] == "completed", data
    upstream_side = upstream_jobs(upstream, upstream.key)
    assert len(upstream_side) == 1  # resumed, never sent again: the provider billed once
    assert routing(gateway, job_id)["upstream_id"] == upstream_side[0]["id"]


def test_a_submit_whose_answer_was_lost_is_reconciled_not_sent_twice(
    make_server: ServerFactory,
) -> None:
    upstream = start_upstream(make_server)
    with running(LosingProxy(upstream.url)) as proxy:
        gateway = start_gateway(
            make_server, routed(upstream_target(proxy.url, "up/fast")), [upstream.key]
        )
        data = submit(gateway, "a lost answer", enable_sync_mode=True)
        assert data["status"] == "completed", data
        assert proxy.lost == 1
    upstream_side = upstream_jobs(upstream, upstream.key)
    assert len(upstream_side) == 1  # the repeat carried the same Idempotency-Key
    assert routing(gateway, data["id"])["upstream_id"] == upstream_side[0]["id"]


def test_a_lost_answer_from_a_provider_that_cannot_be_asked_fails_refunded_not_resent(
    make_server: ServerFactory,
) -> None:
    upstream = start_upstream(make_server)
    with running(LosingProxy(upstream.url)) as proxy:
        gateway = start_gateway(
            make_server,
            routed(
                upstream_target(proxy.url, "up/fast", provider="wavespeed"),
                upstream_target(upstream.url, "up/fast"),
                head="price = 0.05\n",
            ),
            [upstream.key],
        )
        account = cli(gateway, "accounts", "create", "--name", "customer", "--balance", "1.00")
        gateway._key = cli(gateway, "keys", "create", "--name", "c", "--account", account)
        data = ended(gateway, submit(gateway, "a lost answer")["id"])
    assert data["status"] == "failed"
    assert "the provider may have run this job, so it was not sent again" in data["error"]
    # Not failed over either: the first provider may be rendering it (and billing).
    assert len(upstream_jobs(upstream, upstream.key)) == 1
    balance = httpx.get(
        f"{gateway.url}/admin/v1/accounts/{account}",
        headers={"Authorization": "Bearer admin-key-for-upstream-tests-0123456789"},
        timeout=10,
    ).json()["data"]["balance"]
    assert balance == "1.00"  # refunded


def test_a_key_out_of_credit_is_taken_out_and_the_next_key_used(
    make_server: ServerFactory,
) -> None:
    upstream = start_upstream(make_server)
    broke = cli(upstream, "accounts", "create", "--name", "broke", "--balance", "0")
    broke_key = cli(upstream, "keys", "create", "--name", "b", "--account", broke)
    gateway = start_gateway(
        make_server,
        routed(upstream_target(upstream.url, "up/fast")),
        [broke_key, upstream.key],
    )
    ids = [submit(gateway, f"a paid picture {i}")["id"] for i in range(3)]
    for job_id in ids:
        assert ended(gateway, job_id)["status"] == "completed"
    assert len(upstream_jobs(upstream, upstream.key)) == 3
    assert upstream_jobs(upstream, broke_key) == []
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    assert 'imagegate_upstream_keys_disabled_total{env="UPSTREAM_TEST_KEYS"' in metrics
    assert "taken out of use" in gateway.log_text()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_spill_serves_an_idle_route_locally_and_sends_a_long_queue_upstream(
    make_server: ServerFactory,
) -> None:
    upstream = start_upstream(make_server)
    local = 'backend = "mock"\ndelay_ms = 1000\n'
    gateway = start_gateway(
        make_server,
        routed(
            local,
            upstream_target(upstream.url, "up/fast"),
            head='strategy = "spill"\nspill_after_s = 1.5\n',
        ),
        [upstream.key],
        IMAGEGATE_WORKER_CONCURRENCY="1",
    )
    first = submit(gateway, "an idle afternoon", enable_sync_mode=True)
    assert first["status"] == "completed"
    assert routing(gateway, first["id"])["ran_on"] == "local"
    burst = [submit(gateway, f"a busy morning {i}")["id"] for i in range(6)]
    ran = {}
    for job_id in burst:
        data = ended(gateway, job_id)
        assert data["status"] == "completed", data
        ran[job_id] = (routing(gateway, job_id)["ran_on"], data["executionTime"])
    local_jobs = [job for job, (where, _) in ran.items() if where == "local"]
    spilled = [job for job, (where, _) in ran.items() if where == "imagegate"]
    # The queue estimate grows by a second per waiting job: the first ones wait locally,
    # the rest go to the provider at once.
    assert local_jobs and spilled, ran
    assert burst[0] in local_jobs and burst[-1] in spilled, ran
    assert len(upstream_jobs(upstream, upstream.key)) == len(spilled)
    assert all(ms > 0 for _, ms in ran.values()), ran
    for job_id, (where, ms) in ran.items():  # shown with -s: where each ran, how long
        print(f"{job_id} ran on {where:<10} executionTime {ms} ms")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_job_past_its_wait_and_a_cancelled_job_are_cancelled_at_the_provider_too(
    make_server: ServerFactory,
) -> None:
    upstream = start_upstream(make_server)
    gateway = start_gateway(
        make_server,
        routed(upstream_target(upstream.url, "up/slow", max_wait_s=1.0), head="price = 0.05\n"),
        [upstream.key],
    )
    account = cli(gateway, "accounts", "create", "--name", "customer", "--balance", "1.00")
    gateway._key = cli(gateway, "keys", "create", "--name", "c", "--account", account)
    too_long = submit(gateway, "a very slow river")["id"]
    cancelled = submit(gateway, "a change of mind")["id"]
    deadline = time.monotonic() + 20
    while routing(gateway, cancelled)["upstream_state"] != "submitted":
        assert time.monotonic() < deadline, "the job never reached the provider"
        time.sleep(0.05)
    response = httpx.post(
        f"{gateway.url}/api/v3/predictions/{cancelled}/cancel", headers=gateway.auth, timeout=10
    )
    assert response.status_code == 200, response.text
    data = ended(gateway, too_long)
    assert data["status"] == "failed"
    assert "had not finished the job after 1 s; it was asked to cancel it" in data["error"]
    upstream_ids = {routing(gateway, job)["upstream_id"] for job in (too_long, cancelled)}
    deadline = time.monotonic() + 20
    while True:  # the provider stops both; neither renders (nor bills) on
        statuses = {
            job["id"]: (job["status"], job.get("error"))
            for job in upstream_jobs(upstream, upstream.key)
        }
        if all(statuses[i] == ("failed", "cancelled") for i in upstream_ids):
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.1)
    balance = httpx.get(
        f"{gateway.url}/admin/v1/accounts/{account}",
        headers={"Authorization": "Bearer admin-key-for-upstream-tests-0123456789"},
        timeout=10,
    ).json()["data"]["balance"]
    assert balance == "1.00"  # both refunded


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_jobs_stuck_behind_a_stalled_local_model_move_to_the_provider(
    make_server: ServerFactory,
) -> None:
    upstream = start_upstream(make_server)
    stalled = 'backend = "mock"\ndelay_ms = 30000\n'  # holds the one local slot
    gateway = start_gateway(
        make_server,
        routed(
            stalled,
            upstream_target(upstream.url, "up/fast"),
            head='strategy = "spill"\nspill_after_s = 1\n',
        ),
        [upstream.key],
        IMAGEGATE_WORKER_CONCURRENCY="1",
    )
    blocking = submit(gateway, "the job that never ends")["id"]
    deadline = time.monotonic() + 20
    while result(gateway, blocking)["status"] != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Nothing has finished locally, so the submit sees no long wait: it queues locally.
    stuck = submit(gateway, "a job behind it")["id"]
    assert routing(gateway, stuck)["ran_on"] is None
    data = ended(gateway, stuck, timeout=20)
    assert data["status"] == "completed", data
    where = routing(gateway, stuck)
    assert (where["ran_on"], where["hop"]) == ("imagegate", 1)
    assert "waited too long for the local model" in gateway.log_text()

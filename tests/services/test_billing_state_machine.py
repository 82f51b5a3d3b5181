"""Model-based test of the money: random interleavings of submits (some refused for the
balance), claims, completions, failures, failovers to the route's second target, cancels,
worker crashes (leases lapsing, up to the attempt limit) and top-ups, through the
services, on SQLite and PostgreSQL.

After every step: the balance equals the ledger's sum and the model's balance, it is
never negative, every prediction has at most one charge and one refund, and a job is
refunded exactly when it failed."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import delete, select

from imagegate.domain.jobs import MAX_ATTEMPTS, JobStatus
from imagegate.errors import BadRequestError, InsufficientBalanceError
from imagegate.services.container import open_services
from imagegate.settings import Settings
from imagegate.store import ledger
from imagegate.store.tables import ledger as ledger_table
from imagegate.store.tables import predictions
from imagegate.wire import GenerationRequest
from tests.conftest import mock_registry

PRICE = 30_000  # $0.03 an image
LEASE_S = 10
WORKERS = ("w1", "w2")


def test_balances_follow_their_model(database_url: str, tmp_path: Path) -> None:
    # Two targets: the local mock, then a provider (never called: the workers here are
    # the test's own claims and finishes).
    registry = mock_registry(
        tmp_path,
        '[models."a/b"]\ntasks = ["text-to-image"]\nprice = 0.03\n'
        '[[models."a/b".targets]]\nbackend = "mock"\n'
        '[[models."a/b".targets]]\nbackend = "upstream"\nprovider = "imagegate"\n'
        'base_url = "http://127.0.0.1:9"\napi_keys_env = "NO_KEYS"\nupstream_model = "x/y"\n',
    )
    settings = Settings(
        models=registry,
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="s",
        lease_s=LEASE_S,
        image_checker="none",
    )
    loop = asyncio.new_event_loop()
    clock = {"now": datetime(2026, 1, 1, 12, 0, 0)}
    opened = open_services(settings, clock=lambda: clock["now"])
    services: Any = loop.run_until_complete(opened.__aenter__())

    async def clear_queue() -> None:
        # Each example starts with an empty queue: the last one's jobs are not this one's.
        async with services.db.write() as conn:
            await conn.execute(delete(predictions))

    class Billing(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            loop.run_until_complete(clear_queue())
            self.account = loop.run_until_complete(
                services.accounts.create_account("m", balance_micros=5 * PRICE)
            )
            key = loop.run_until_complete(services.accounts.create_key("k", self.account.id))
            self.principal = loop.run_until_complete(services.accounts.authenticate(key.token))
            self.balance = 5 * PRICE
            self.jobs: dict[str, Any] = {}  # id -> the Job as last seen
            self.charged: dict[str, int] = {}

        def run(self, coro: Any) -> Any:
            return loop.run_until_complete(coro)

        @rule(n=st.integers(1, 3))
        def submit(self, n: int) -> None:
            request = GenerationRequest(prompt="p", n=n)
            try:
                job = self.run(
                    services.predictions.submit(self.principal, "a/b", "text-to-image", request)
                )
            except InsufficientBalanceError:
                assert self.balance < n * PRICE
                return
            assert self.balance >= n * PRICE
            self.balance -= n * PRICE
            self.jobs[job.id] = job
            self.charged[job.id] = n * PRICE

        @rule(worker=st.sampled_from(WORKERS), lane=st.sampled_from(("local", "upstream")))
        def claim(self, worker: str, lane: str) -> None:
            job = self.run(services.execution.claim(worker, lane))
            if job is not None:
                self.jobs[job.id] = job
            # Claims that hit the attempt limit failed their jobs: refunds, read back below.
            self._refresh()

        def _refresh(self) -> None:
            for job_id in list(self.jobs):
                fresh = self.run(services.predictions.get(self.principal, job_id))
                if (
                    fresh.status == JobStatus.FAILED
                    and self.jobs[job_id].status != JobStatus.FAILED
                ):
                    self.balance += self.charged[job_id]
                self.jobs[job_id] = fresh

        def _held(self, data: st.DataObject) -> Any:
            held = [j for j in self.jobs.values() if j.status == JobStatus.PROCESSING]
            return data.draw(st.sampled_from(held)) if held else None

        @rule(data=st.data(), succeed=st.booleans())
        def finish(self, data: st.DataObject, succeed: bool) -> None:
            job = self._held(data)
            if job is None:
                return
            if succeed:
                done = self.run(
                    services.execution.complete(
                        job, job.lease_owner, [b"x"] * job.params.n, extension="png",
                        nsfw=[False] * job.params.n, inference_ms=1, execution_ms=1,
                    )
                )  # fmt: skip
            else:
                done = self.run(
                    services.execution.fail(job, job.lease_owner, "boom", execution_ms=1)
                )
            stored = self.run(services.predictions.get(self.principal, job.id))
            # The lease may have lapsed and passed on: then this worker's finish is refused.
            assert done == (
                stored.status != JobStatus.PROCESSING or stored.lease_owner != job.lease_owner
            )
            if done and not succeed:
                self.balance += self.charged[job.id]
            self.jobs[job.id] = stored

        @rule(data=st.data())
        def fail_over(self, data: st.DataObject) -> None:
            job = self._held(data)
            if job is None:
                return
            lanes = services.registry.routes["a/b"].lanes
            moved = self.run(services.execution.hand_over(job, job.lease_owner, lanes, "test"))
            stored = self.run(services.predictions.get(self.principal, job.id))
            if moved:
                # Back in the queue for the next target, still charged once, not refunded.
                assert (stored.status, stored.target, stored.lane) == (
                    JobStatus.CREATED,
                    1,
                    "upstream",
                )
            else:
                assert job.next_target is None or stored.lease_owner != job.lease_owner
            self.jobs[job.id] = stored

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            if not self.jobs:
                return
            job_id = data.draw(st.sampled_from(sorted(self.jobs)))
            try:
                self.run(services.predictions.cancel(self.principal, job_id))
            except BadRequestError:
                assert self.jobs[job_id].is_terminal
                return
            assert not self.jobs[job_id].is_terminal
            self.balance += self.charged[job_id]
            self.jobs[job_id] = self.run(services.predictions.get(self.principal, job_id))

        @rule(seconds=st.integers(1, 3 * LEASE_S))
        def time_passes(self, seconds: int) -> None:
            clock["now"] += timedelta(seconds=seconds)  # a crashed worker stops beating

        @rule()
        def top_up(self) -> None:
            self.run(services.accounts.topup(self.account.id, PRICE))
            self.balance += PRICE

        @invariant()
        def money_matches_the_model(self) -> None:
            statement = self.run(services.accounts.statement(self.account.id, 10_000))
            assert statement.account.balance_micros == statement.ledger_total == self.balance
            assert self.balance >= 0

            async def rows() -> tuple[list[Any], dict[str, str]]:
                async with services.db.read() as conn:
                    entries = (await conn.execute(select(ledger_table))).all()
                    statuses = (
                        await conn.execute(select(predictions.c.id, predictions.c.status))
                    ).all()
                return entries, {r.id: r.status for r in statuses}

            entries, statuses = self.run(rows())
            mine = [e for e in entries if e.account_id == self.account.id and e.prediction_id]
            per_job = Counter((e.prediction_id, e.kind) for e in mine)
            assert all(count == 1 for count in per_job.values())
            for job_id in self.jobs:
                refunded = (job_id, ledger.Kind.REFUND.value) in per_job
                assert refunded == (statuses[job_id] == JobStatus.FAILED.value), job_id
                assert (job_id, ledger.Kind.CHARGE.value) in per_job

    try:
        run_state_machine_as_test(
            Billing,
            settings=hypothesis_settings(max_examples=15, stateful_step_count=25),
        )
    finally:
        loop.run_until_complete(opened.__aexit__(None, None, None))
        loop.close()
    assert MAX_ATTEMPTS >= 1

"""Model-based test of the queue: random interleavings of submit, claim, heartbeat, finish,
cancel, worker crashes and the passing of time, checked step by step against a model.

It checks that terminal states are final, a job is held by at most one worker, only the
lease holder can finish a job, and nothing stays stuck in `processing` once its lease
lapsed: a lapsed job is always claimable again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import delete

from imagegate.domain.jobs import JobStatus
from imagegate.queue import leases
from imagegate.store import accounts, jobs
from imagegate.store.engine import Database
from imagegate.store.migrate import upgrade
from imagegate.store.tables import predictions
from tests.conftest import sample_job

LEASE_S = 10
WORKERS = ("w1", "w2", "w3")


@dataclass
class Expected:
    status: JobStatus
    owner: str | None = None
    expires: datetime | None = None
    attempts: int = 0


def test_queue_follows_its_model(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    db = Database(database_url)
    loop.run_until_complete(upgrade(db.engine))

    async def reset() -> None:
        async with db.write() as conn:
            await conn.execute(delete(predictions))
            if not await accounts.account_exists(conn, "acct"):
                await accounts.insert_account(conn, "acct", "t", datetime(2026, 1, 1))

    class QueueMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            loop.run_until_complete(reset())
            self.now = datetime(2026, 1, 1, 12, 0, 0)
            self.model: dict[str, Expected] = {}
            self.counter = 0

        def run(self, coro):  # type: ignore[no-untyped-def]
            return loop.run_until_complete(coro)

        async def _write(self, fn):  # type: ignore[no-untyped-def]
            async with db.write() as conn:
                return await fn(conn)

        @rule()
        def submit(self) -> None:
            self.counter += 1
            job = sample_job(self.counter, now=self.now)
            job_id = job.id
            self.run(self._write(lambda c: jobs.insert_jobs(c, [job])))
            self.model[job_id] = Expected(JobStatus.CREATED)

        def _claimable(self) -> list[str]:
            return sorted(
                job_id
                for job_id, e in self.model.items()
                if e.status == JobStatus.CREATED
                or (
                    e.status == JobStatus.PROCESSING
                    and e.expires is not None
                    and e.expires < self.now
                )
            )

        @rule(worker=st.sampled_from(WORKERS))
        def claim(self, worker: str) -> None:
            job = self.run(self._write(lambda c: leases.claim_next(c, worker, self.now, LEASE_S)))
            claimable = self._claimable()
            if not claimable:
                assert job is None
                return
            assert job is not None and job.id == claimable[0]
            e = self.model[job.id]
            e.status, e.owner = JobStatus.PROCESSING, worker
            e.expires = self.now + timedelta(seconds=LEASE_S)
            e.attempts += 1
            assert job.attempts == e.attempts

        def _pick(self, data: st.DataObject) -> str | None:
            return data.draw(st.sampled_from(sorted(self.model))) if self.model else None

        def _holds(self, job_id: str, worker: str) -> bool:
            e = self.model[job_id]
            return e.status == JobStatus.PROCESSING and e.owner == worker

        @rule(worker=st.sampled_from(WORKERS), data=st.data())
        def heartbeat(self, worker: str, data: st.DataObject) -> None:
            job_id = self._pick(data)
            if job_id is None:
                return
            ok = self.run(
                self._write(lambda c: leases.heartbeat(c, job_id, worker, self.now, LEASE_S))
            )
            assert ok == self._holds(job_id, worker)
            if ok:
                self.model[job_id].expires = self.now + timedelta(seconds=LEASE_S)

        @rule(worker=st.sampled_from(WORKERS), data=st.data(), succeed=st.booleans())
        def finish(self, worker: str, data: st.DataObject, succeed: bool) -> None:
            job_id = self._pick(data)
            if job_id is None:
                return
            if succeed:
                ok = self.run(
                    self._write(
                        lambda c: leases.complete(
                            c,
                            job_id,
                            worker,
                            outputs=[f"{job_id}.png"],
                            nsfw=[False],
                            execution_ms=1,
                            inference_ms=1,
                            now=self.now,
                        )
                    )
                )
            else:
                ok = self.run(
                    self._write(
                        lambda c: leases.fail(
                            c, job_id, worker, error="boom", execution_ms=1, now=self.now
                        )
                    )
                )
            assert ok == self._holds(job_id, worker)
            if ok:
                e = self.model[job_id]
                e.status = JobStatus.COMPLETED if succeed else JobStatus.FAILED
                e.owner = e.expires = None

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            job_id = self._pick(data)
            if job_id is None:
                return
            ok = self.run(self._write(lambda c: jobs.cancel_job(c, job_id, "cancelled", self.now)))
            e = self.model[job_id]
            assert ok == (e.status in (JobStatus.CREATED, JobStatus.PROCESSING))
            if ok:
                e.status, e.owner, e.expires = JobStatus.FAILED, None, None

        @rule(seconds=st.integers(1, 3 * LEASE_S))
        def time_passes(self, seconds: int) -> None:
            # A worker that crashed simply stops heart-beating; time passing covers it.
            self.now += timedelta(seconds=seconds)

        @invariant()
        def store_matches_model(self) -> None:
            async def read() -> dict[str, tuple[str, str | None, int]]:
                async with db.read() as conn:
                    rows = (await conn.execute(predictions.select())).mappings().all()
                return {r["id"]: (r["status"], r["lease_owner"], r["attempts"]) for r in rows}

            stored = self.run(read())
            expected = {
                job_id: (e.status.value, e.owner, e.attempts) for job_id, e in self.model.items()
            }
            assert stored == expected

    try:
        run_state_machine_as_test(
            QueueMachine,
            settings=hypothesis_settings(max_examples=25, stateful_step_count=30),
        )
    finally:
        loop.run_until_complete(db.dispose())
        loop.close()

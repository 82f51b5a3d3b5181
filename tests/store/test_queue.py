"""The predictions table as a queue, on SQLite and PostgreSQL: claims are exclusive, leases
lapse, and finishes are compare-and-set on the lease holder."""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.domain.jobs import JobStatus
from imagegate.queue import leases
from imagegate.store import jobs
from imagegate.store.engine import Database
from tests.conftest import SAMPLE_TIME, sample_job

pytestmark = pytest.mark.anyio
T0 = SAMPLE_TIME


async def add_jobs(db: Database, count: int) -> list[str]:
    new = [sample_job(n) for n in range(count)]
    async with db.write() as conn:
        await jobs.insert_jobs(conn, new)
    return [job.id for job in new]


async def finish(
    conn: AsyncConnection, job_id: str, worker: str, output: str, now: datetime
) -> bool:
    return await leases.complete(
        conn,
        job_id,
        worker,
        outputs=[output],
        nsfw=[False],
        execution_ms=1,
        inference_ms=1,
        now=now,
    )


async def claim(db: Database, worker: str, now: datetime = T0, lease_s: float = 30) -> str | None:
    async with db.write() as conn:
        job = await leases.claim_next(conn, worker, now, lease_s)
    return job.id if job else None


async def test_claims_take_the_oldest_first_and_each_job_once(db: Database) -> None:
    ids = await add_jobs(db, 3)
    assert [await claim(db, "w") for _ in range(4)] == [*ids, None]


async def test_concurrent_claims_never_hand_one_job_to_two_workers(db: Database) -> None:
    ids = await add_jobs(db, 20)
    claimed: list[str] = []

    async def worker(name: str) -> None:
        while (job_id := await claim(db, name)) is not None:
            claimed.append(job_id)

    async with anyio.create_task_group() as group:
        for n in range(6):
            group.start_soon(worker, f"w{n}")
    assert sorted(claimed) == ids


async def test_a_lapsed_lease_is_claimed_again_and_the_old_holder_cannot_finish(
    db: Database,
) -> None:
    [job_id] = await add_jobs(db, 1)
    assert await claim(db, "dead", T0, lease_s=10) == job_id
    assert await claim(db, "other", T0 + timedelta(seconds=5)) is None
    later = T0 + timedelta(seconds=11)
    async with db.write() as conn:
        retaken = await leases.claim_next(conn, "other", later, 10)
    assert retaken is not None and retaken.id == job_id and retaken.attempts == 2
    async with db.write() as conn:
        assert not await finish(conn, job_id, "dead", "x", later)
        assert not await leases.heartbeat(conn, job_id, "dead", later, 10)
        assert await finish(conn, job_id, "other", "y", later)
        job = await jobs.get_job(conn, job_id)
    assert job is not None and job.status == JobStatus.COMPLETED and job.outputs == ("y",)


async def test_heartbeat_keeps_the_lease(db: Database) -> None:
    [job_id] = await add_jobs(db, 1)
    await claim(db, "w", T0, lease_s=10)
    async with db.write() as conn:
        assert await leases.heartbeat(conn, job_id, "w", T0 + timedelta(seconds=8), 10)
    assert await claim(db, "other", T0 + timedelta(seconds=15)) is None
    assert await claim(db, "other", T0 + timedelta(seconds=19)) == job_id


async def test_terminal_jobs_are_final(db: Database) -> None:
    [job_id] = await add_jobs(db, 1)
    await claim(db, "w")
    async with db.write() as conn:
        assert await jobs.cancel_job(conn, job_id, "cancelled", T0)
        assert not await jobs.cancel_job(conn, job_id, "cancelled", T0)
        assert not await leases.complete(
            conn, job_id, "w", outputs=[], nsfw=[], execution_ms=0, inference_ms=0, now=T0
        )
        assert not await leases.fail(conn, job_id, "w", error="x", execution_ms=0, now=T0)
        job = await jobs.get_job(conn, job_id)
    assert job is not None and job.status == JobStatus.FAILED and job.error == "cancelled"
    assert await claim(db, "w", T0 + timedelta(hours=1)) is None

"""The predictions table as a queue, on SQLite and PostgreSQL: claims are exclusive, leases
lapse, and finishes are compare-and-set on the lease holder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import anyio
import pytest

from imagegate.domain.jobs import JobStatus
from imagegate.domain.requests import JobParams
from imagegate.queue import leases
from imagegate.store import accounts, jobs
from imagegate.store.engine import Database
from imagegate.store.migrate import upgrade

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 1, 1, 12, 0, 0)
PARAMS = JobParams(
    prompt="p", n=1, aspect_ratio="1:1", resolution="1k", seed=1, width=1024, height=1024
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await upgrade(database.engine)
    async with database.write() as conn:
        await accounts.insert_account(conn, "acct", "test", T0)
    yield database
    await database.dispose()


async def add_jobs(db: Database, count: int) -> list[str]:
    ids = [f"{i:012x}{'0' * 20}" for i in range(count)]
    async with db.write() as conn:
        for job_id in ids:
            await jobs.insert_job(
                conn,
                job_id=job_id,
                account_id="acct",
                route="a/b",
                task="text-to-image",
                params=PARAMS,
                reference_keys=[],
                now=T0,
            )
    return ids


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
        assert not await leases.complete(
            conn,
            job_id,
            "dead",
            outputs=["x"],
            nsfw=[False],
            execution_ms=1,
            inference_ms=1,
            now=later,
        )
        assert not await leases.heartbeat(conn, job_id, "dead", later, 10)
        assert await leases.complete(
            conn,
            job_id,
            "other",
            outputs=["y"],
            nsfw=[False],
            execution_ms=1,
            inference_ms=1,
            now=later,
        )
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

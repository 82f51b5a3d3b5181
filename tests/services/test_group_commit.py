"""Group commit of job inserts, on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import asynccontextmanager

import anyio
import pytest
from sqlalchemy import func, select

from imagegate.services.clock import utc_now
from imagegate.services.group_commit import JobInserter
from imagegate.store import jobs
from imagegate.store.engine import Database
from imagegate.store.tables import predictions
from tests.conftest import sample_job

pytestmark = pytest.mark.anyio
job = sample_job


async def count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(predictions))).scalar_one())


async def test_concurrent_inserts_all_commit_in_fewer_transactions(db: Database) -> None:
    transactions = 0
    original = db.write

    @asynccontextmanager
    async def counting_write():  # type: ignore[no-untyped-def]
        nonlocal transactions
        transactions += 1
        async with original() as conn:
            yield conn

    db.write = counting_write  # type: ignore[method-assign]
    inserter = JobInserter(db, utc_now)
    async with anyio.create_task_group() as group:
        for n in range(50):
            group.start_soon(inserter.insert, job(n))
    assert await count(db) == 50
    assert transactions < 50


async def test_a_failed_batch_fails_every_insert_in_it_and_keeps_none(db: Database) -> None:
    async with db.write() as conn:
        await jobs.insert_jobs(conn, [job(1)])
    inserter = JobInserter(db, utc_now)
    outcomes: dict[int, str] = {}

    async def insert(n: int) -> None:
        try:
            await inserter.insert(job(n))
            outcomes[n] = "ok"
        except Exception as exc:
            outcomes[n] = type(exc).__name__

    # Hold the flush lock so that both inserts queue into one batch; the duplicate id
    # makes that batch's INSERT fail as a whole.
    async with anyio.create_task_group() as group, inserter._flushing:
        group.start_soon(insert, 1)
        group.start_soon(insert, 2)
        await anyio.wait_all_tasks_blocked()
        assert len(inserter._queue) == 2
    assert outcomes[1] == outcomes[2] == "IntegrityError"
    assert await count(db) == 1
    await inserter.insert(job(3))
    assert await count(db) == 2

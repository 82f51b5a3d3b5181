"""The predictions table as a queue: claims, heartbeats and compare-and-set finishes.

A claim takes the oldest job that is waiting, or whose lease lapsed (its worker died), in
one ``UPDATE … RETURNING``. On PostgreSQL the inner select is ``FOR UPDATE SKIP LOCKED`` so
concurrent workers never queue on each other's row; SQLite ignores that clause, and the
services' ``BEGIN IMMEDIATE`` write transaction serialises claims instead.
Every finish names the lease holder, so a worker that lost its lease (cancelled, or taken
over after a stall) can never overwrite the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.domain.jobs import Job, JobStatus
from imagegate.store.jobs import row_to_job
from imagegate.store.tables import predictions

_CREATED = JobStatus.CREATED.value
_PROCESSING = JobStatus.PROCESSING.value


async def claim_next(
    conn: AsyncConnection, worker_id: str, now: datetime, lease_s: float
) -> Job | None:
    waiting = or_(
        predictions.c.status == _CREATED,
        and_(predictions.c.status == _PROCESSING, predictions.c.lease_expires_at < now),
    )
    candidate = (
        select(predictions.c.id)
        .where(waiting)
        .order_by(predictions.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = await conn.execute(
        update(predictions)
        .where(predictions.c.id == candidate, waiting)
        .values(
            status=_PROCESSING,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            attempts=predictions.c.attempts + 1,
            started_at=func.coalesce(predictions.c.started_at, now),
        )
        .returning(*predictions.c)
    )
    row = result.mappings().first()
    return row_to_job(row) if row else None


def _held_by(job_id: str, worker_id: str) -> list[ColumnElement[bool]]:
    return [
        predictions.c.id == job_id,
        predictions.c.status == _PROCESSING,
        predictions.c.lease_owner == worker_id,
    ]


async def heartbeat(
    conn: AsyncConnection,
    job_id: str,
    worker_id: str,
    now: datetime,
    lease_s: float,
    progress: tuple[int, int] | None = None,
) -> bool:
    """Extend the lease (and record the model's step), only while ``worker_id`` holds it."""
    values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_s)}
    if progress is not None:
        values["progress_step"], values["progress_total"] = progress
    result = await conn.execute(
        update(predictions).where(*_held_by(job_id, worker_id)).values(values)
    )
    return result.rowcount == 1


async def complete(
    conn: AsyncConnection,
    job_id: str,
    worker_id: str,
    *,
    outputs: Sequence[str],
    nsfw: Sequence[bool],
    execution_ms: int,
    inference_ms: int,
    now: datetime,
) -> bool:
    return await _finish(
        conn,
        job_id,
        worker_id,
        status=JobStatus.COMPLETED.value,
        outputs=list(outputs),
        nsfw=list(nsfw),
        execution_ms=execution_ms,
        inference_ms=inference_ms,
        finished_at=now,
    )


async def fail(
    conn: AsyncConnection,
    job_id: str,
    worker_id: str,
    *,
    error: str,
    execution_ms: int,
    now: datetime,
) -> bool:
    return await _finish(
        conn,
        job_id,
        worker_id,
        status=JobStatus.FAILED.value,
        error=error,
        execution_ms=execution_ms,
        finished_at=now,
    )


async def _finish(conn: AsyncConnection, job_id: str, worker_id: str, **values: Any) -> bool:
    """End a job, only if ``worker_id`` still holds its lease."""
    result = await conn.execute(
        update(predictions)
        .where(*_held_by(job_id, worker_id))
        .values(**values, lease_owner=None, lease_expires_at=None)
    )
    return result.rowcount == 1

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
    conn: AsyncConnection, worker_id: str, now: datetime, lease_s: float, lane: str = "local"
) -> Job | None:
    """The oldest waiting job of ``lane``: the model slots take "local" jobs, the upstream
    pool "upstream" ones."""
    waiting = and_(
        predictions.c.lane == lane,
        or_(
            predictions.c.status == _CREATED,
            and_(predictions.c.status == _PROCESSING, predictions.c.lease_expires_at < now),
        ),
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
    ran_on: str | None = None,
    cost_micros: int = 0,
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
        ran_on=ran_on,
        cost_micros=cost_micros,
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


async def record_upstream(
    conn: AsyncConnection,
    job_id: str,
    worker_id: str,
    *,
    state: str | None,
    key: str | None = None,
    upstream_id: str | None = None,
) -> bool:
    """Store where the job stands at the provider, only while ``worker_id`` holds it."""
    result = await conn.execute(
        update(predictions)
        .where(*_held_by(job_id, worker_id))
        .values(upstream_state=state, upstream_key=key, upstream_id=upstream_id)
    )
    return result.rowcount == 1


async def hand_over(
    conn: AsyncConnection, job_id: str, worker_id: str, *, target: int, lane: str, hop: int
) -> bool:
    """Put a job back in the queue for its next target (a failover), only while
    ``worker_id`` holds it. Its lapsed-lease count starts again: that counts crashes at
    one target, and the plan's length already bounds the hops."""
    result = await conn.execute(
        update(predictions)
        .where(*_held_by(job_id, worker_id))
        .values(
            status=_CREATED,
            target=target,
            lane=lane,
            hop=hop,
            attempts=0,
            upstream_state=None,
            upstream_key=None,
            upstream_id=None,
            lease_owner=None,
            lease_expires_at=None,
            progress_step=0,
            progress_total=0,
        )
    )
    return result.rowcount == 1


async def waiting_since(
    conn: AsyncConnection, route: str, before: datetime, limit: int = 100
) -> list[Job]:
    """The route's jobs that wait for a model slot and were made before ``before``."""
    rows = await conn.execute(
        select(predictions)
        .where(
            predictions.c.lane == "local",
            predictions.c.status == _CREATED,
            predictions.c.route == route,
            predictions.c.created_at < before,
        )
        .order_by(predictions.c.id)
        .limit(limit)
    )
    return [row_to_job(row) for row in rows.mappings()]


async def reroute(conn: AsyncConnection, job: Job, *, target: int, lane: str, hop: int) -> bool:
    """Move a job that nobody holds to another target, only if it still waits where it
    was (a worker may claim it meanwhile)."""
    result = await conn.execute(
        update(predictions)
        .where(
            predictions.c.id == job.id,
            predictions.c.status == _CREATED,
            predictions.c.lane == job.lane,
            predictions.c.hop == job.hop,
        )
        .values(target=target, lane=lane, hop=hop)
    )
    return result.rowcount == 1


async def _finish(conn: AsyncConnection, job_id: str, worker_id: str, **values: Any) -> bool:
    """End a job, only if ``worker_id`` still holds its lease."""
    result = await conn.execute(
        update(predictions)
        .where(*_held_by(job_id, worker_id))
        .values(**values, lease_owner=None, lease_expires_at=None)
    )
    return result.rowcount == 1

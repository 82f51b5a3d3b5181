"""Reads and writes of the predictions table. Functions take a connection and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.domain.jobs import Job, JobStatus
from imagegate.domain.requests import JobParams
from imagegate.store.tables import predictions

# Built once: constructing ``insert().values(...)`` per call cost more than the INSERT.
_INSERT = insert(predictions)
_BY_ID = select(predictions).where(predictions.c.id == bindparam("job_id"))


def row_to_job(row: RowMapping) -> Job:
    return Job(
        id=row["id"],
        account_id=row["account_id"],
        route=row["route"],
        task=row["task"],
        status=JobStatus(row["status"]),
        params=JobParams.from_json(row["params"]),
        reference_keys=tuple(row["reference_keys"] or ()),
        outputs=tuple(row["outputs"] or ()),
        nsfw=tuple(row["nsfw"] or ()),
        error=row["error"],
        execution_ms=row["execution_ms"],
        inference_ms=row["inference_ms"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        lease_owner=row["lease_owner"],
        progress_step=row["progress_step"],
        progress_total=row["progress_total"],
        key_id=row["key_id"],
        price_micros=row["price_micros"],
        lane=row["lane"],
        target=row["target"],
        plan=tuple(row["plan"] or (row["target"],)),
        hop=row["hop"],
        ran_on=row["ran_on"],
        upstream_state=row["upstream_state"],
        upstream_key=row["upstream_key"],
        upstream_id=row["upstream_id"],
        cost_micros=row["cost_micros"],
    )


def new_job(
    *,
    job_id: str,
    account_id: str,
    route: str,
    task: str,
    params: JobParams,
    reference_keys: Sequence[str],
    now: datetime,
    key_id: str | None = None,
    price_micros: int = 0,
    plan: Sequence[int] = (0,),
    lane: str = "local",
) -> Job:
    """``plan`` is the order of targets the job may try; ``lane`` is its first's."""
    return Job(
        id=job_id,
        account_id=account_id,
        route=route,
        task=task,
        status=JobStatus.CREATED,
        params=params,
        reference_keys=tuple(reference_keys),
        outputs=(),
        nsfw=(),
        error=None,
        execution_ms=0,
        inference_ms=0,
        attempts=0,
        created_at=now,
        started_at=None,
        finished_at=None,
        key_id=key_id,
        price_micros=price_micros,
        lane=lane,
        target=plan[0],
        plan=tuple(plan),
    )


async def insert_jobs(conn: AsyncConnection, new: Sequence[Job]) -> None:
    """Insert jobs just made by ``new_job``, in one statement."""
    await conn.execute(
        _INSERT,
        [
            {
                "id": job.id,
                "account_id": job.account_id,
                "route": job.route,
                "task": job.task,
                "status": job.status.value,
                "params": job.params.to_json(),
                "reference_keys": list(job.reference_keys),
                "outputs": list(job.outputs),
                "nsfw": list(job.nsfw),
                "error": job.error,
                "execution_ms": job.execution_ms,
                "inference_ms": job.inference_ms,
                "attempts": job.attempts,
                "created_at": job.created_at,
                "key_id": job.key_id,
                "price_micros": job.price_micros,
                "lane": job.lane,
                "target": job.target,
                "plan": list(job.plan) if len(job.plan) > 1 else None,
            }
            for job in new
        ],
    )


async def count_unfinished(
    conn: AsyncConnection, *, account_id: str | None = None, key_id: str | None = None
) -> int:
    """Jobs of an account, or of a key, that are waiting or running."""
    conditions: list[Any] = [
        predictions.c.status.in_([JobStatus.CREATED.value, JobStatus.PROCESSING.value])
    ]
    if account_id is not None:
        conditions.append(predictions.c.account_id == account_id)
    if key_id is not None:
        conditions.append(predictions.c.key_id == key_id)
    query = select(func.count()).select_from(predictions).where(*conditions)
    return int((await conn.execute(query)).scalar_one())


async def get_job(conn: AsyncConnection, job_id: str) -> Job | None:
    first = (await conn.execute(_BY_ID, {"job_id": job_id})).mappings().first()
    return row_to_job(first) if first else None


async def list_jobs(
    conn: AsyncConnection,
    account_id: str,
    *,
    offset: int,
    limit: int,
    status: str | None = None,
    route: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[list[Job], int]:
    conditions: list[Any] = [predictions.c.account_id == account_id]
    if status:
        conditions.append(predictions.c.status == status)
    if route:
        conditions.append(predictions.c.route == route)
    if created_after:
        conditions.append(predictions.c.created_at >= created_after)
    if created_before:
        conditions.append(predictions.c.created_at < created_before)
    total = (
        await conn.execute(select(func.count()).select_from(predictions).where(*conditions))
    ).scalar_one()
    rows = (
        await conn.execute(
            select(predictions)
            .where(*conditions)
            .order_by(predictions.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).mappings()
    return [row_to_job(r) for r in rows], int(total)


async def cancel_job(conn: AsyncConnection, job_id: str, error: str, now: datetime) -> bool:
    """Fail a job that has not ended; False if it already had."""
    result = await conn.execute(
        update(predictions)
        .where(
            predictions.c.id == job_id,
            predictions.c.status.in_([JobStatus.CREATED.value, JobStatus.PROCESSING.value]),
        )
        .values(status=JobStatus.FAILED.value, error=error, finished_at=now, lease_owner=None)
    )
    return result.rowcount == 1


async def local_queue(conn: AsyncConnection, route: str) -> tuple[int, datetime | None]:
    """How many of the route's jobs wait for a model slot, and since when the oldest."""
    row = (
        await conn.execute(
            select(func.count(), func.min(predictions.c.created_at)).where(
                predictions.c.lane == "local",
                predictions.c.status == JobStatus.CREATED.value,
                predictions.c.route == route,
            )
        )
    ).one()
    return int(row[0]), row[1]


async def recent_local_ms(conn: AsyncConnection, route: str, last: int = 20) -> list[int]:
    """Execution times of the route's last completed jobs that ran on the local model."""
    recent = (
        select(predictions.c.execution_ms)
        .where(
            predictions.c.route == route,
            predictions.c.lane == "local",
            predictions.c.status == JobStatus.COMPLETED.value,
        )
        .order_by(predictions.c.id.desc())
        .limit(last)
    )
    return [int(ms) for ms in (await conn.execute(recent)).scalars()]


_UNFINISHED = (JobStatus.CREATED.value, JobStatus.PROCESSING.value)


async def count_unfinished_by_account(
    conn: AsyncConnection, account_ids: Sequence[str]
) -> dict[str, int]:
    """``count_unfinished`` for many accounts in one query: each id with its count."""
    return await _count_unfinished_each(conn, predictions.c.account_id, account_ids)


async def count_unfinished_by_key(conn: AsyncConnection, key_ids: Sequence[str]) -> dict[str, int]:
    """``count_unfinished`` for many keys in one query: each id with its count."""
    return await _count_unfinished_each(conn, predictions.c.key_id, key_ids)


async def _count_unfinished_each(
    conn: AsyncConnection, column: Any, ids: Sequence[str]
) -> dict[str, int]:
    if not ids:
        return {}
    query = (
        select(column, func.count())
        .where(column.in_(ids), predictions.c.status.in_(_UNFINISHED))
        .group_by(column)
    )
    counts = dict.fromkeys(ids, 0)
    counts.update({row[0]: int(row[1]) for row in await conn.execute(query)})
    return counts

"""Totals of jobs, revenue and provider cost per route and target, for the usage report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.domain.jobs import JobStatus
from imagegate.store.tables import predictions


@dataclass(frozen=True)
class UsageRow:
    route: str
    target: str  # where the completed jobs ran; "-" for jobs that ran nowhere (failed)
    jobs: int
    completed: int
    failed: int
    revenue_micros: int  # what the completed jobs were charged (failed ones are refunded)
    cost_micros: int  # what the providers charge for them

    @property
    def margin_micros(self) -> int:
        return self.revenue_micros - self.cost_micros


async def usage_since(conn: AsyncConnection, since: datetime) -> list[UsageRow]:
    completed = predictions.c.status == JobStatus.COMPLETED.value
    target = func.coalesce(predictions.c.ran_on, "-")
    query = (
        select(
            predictions.c.route,
            target.label("target"),
            func.count(),
            func.sum(case((completed, 1), else_=0)),
            func.sum(case((predictions.c.status == JobStatus.FAILED.value, 1), else_=0)),
            func.sum(case((completed, predictions.c.price_micros), else_=0)),
            func.sum(case((completed, predictions.c.cost_micros), else_=0)),
        )
        .where(predictions.c.created_at >= since)
        .group_by(predictions.c.route, target)
        .order_by(predictions.c.route, target)
    )
    return [
        UsageRow(route, str(where), int(n), int(ok or 0), int(bad or 0), int(rev or 0), int(c or 0))
        for route, where, n, ok, bad, rev, c in (await conn.execute(query)).all()
    ]

"""Reports for the operator: what each route and target earned and cost."""

from __future__ import annotations

from datetime import timedelta

from imagegate.services.clock import Clock
from imagegate.store import usage
from imagegate.store.engine import Database
from imagegate.store.usage import UsageRow


async def usage_report(db: Database, clock: Clock, window: timedelta) -> list[UsageRow]:
    async with db.read() as conn:
        return await usage.usage_since(conn, clock() - window)

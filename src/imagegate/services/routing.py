"""Where a new job goes: the route's plan of targets, and for "spill" routes whether the
local queue is too long to wait in.

The local wait is estimated as the jobs already waiting for a model slot, times the recent
time a job takes on the local model, divided by the worker's slots. A route whose oldest
waiting job has already waited longer than ``spill_after_s`` spills too (the local model
may be down, so nothing has finished to measure).
"""

from __future__ import annotations

import random
import statistics
import time

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.domain.registry import RouteSpec
from imagegate.domain.requests import JobParams
from imagegate.domain.routing import plan_targets
from imagegate.services.clock import Clock
from imagegate.settings import Settings
from imagegate.store import jobs as repo
from imagegate.store.engine import Database

# A job's local time changes slowly; reading it once a second per route keeps a burst of
# submits from querying it per job.
_SERVICE_TIME_TTL_S = 1.0


class Router:
    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.rng = random.Random()
        self._service_s: dict[str, tuple[float, float | None]] = {}

    async def plan(self, spec: RouteSpec, params: JobParams) -> tuple[tuple[int, ...], str]:
        """The job's targets in order, and the lane of the first."""
        spill = spec.strategy == "spill" and await self.local_wait_too_long(spec)
        plan = plan_targets(spec, params, spill=spill, rng=self.rng)
        return plan, spec.all_targets[plan[0]].lane

    async def local_wait_too_long(self, spec: RouteSpec) -> bool:
        async with self.db.read() as conn:
            waiting, oldest = await repo.local_queue(conn, spec.route)
            if waiting == 0:
                return False
            if oldest is not None:
                waited = (self.clock() - oldest).total_seconds()
                if waited > spec.spill_after_s:
                    return True
            service_s = await self._service_time(conn, spec.route)
        if service_s is None:
            return False
        estimate = waiting * service_s / self.settings.worker_concurrency
        return estimate > spec.spill_after_s

    async def _service_time(self, conn: AsyncConnection, route: str) -> float | None:
        now = time.monotonic()
        cached = self._service_s.get(route)
        if cached is not None and now - cached[0] < _SERVICE_TIME_TTL_S:
            return cached[1]
        recent = await repo.recent_local_ms(conn, route)
        value = statistics.median(recent) / 1000 if recent else None
        self._service_s[route] = (now, value)
        return value

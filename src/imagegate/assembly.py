"""Wires the API and the in-process worker together, for ``imagegate serve`` and tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from imagegate.api.app import create_app
from imagegate.services.clock import Clock, utc_now
from imagegate.services.container import Services
from imagegate.settings import Settings
from imagegate.worker.supervisor import Worker


@asynccontextmanager
async def in_process_worker(services: Services) -> AsyncIterator[None]:
    worker = Worker(services)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        try:
            yield
        finally:
            # Let jobs in hand finish (bounded); one cut off here is not lost: its lease
            # lapses and a worker runs it again.
            worker.stop()
            with anyio.move_on_after(services.settings.shutdown_grace_s, shield=True):
                await worker.stopped.wait()
            group.cancel_scope.cancel()


def build_app(settings: Settings, *, clock: Clock = utc_now) -> FastAPI:
    companion = in_process_worker if settings.run_worker else None
    return create_app(settings, companion=companion, clock=clock)

"""Cross-process wake-ups on PostgreSQL: ``NOTIFY`` inside the transaction that changes a
job (delivered only if it commits), and a listener that turns them into local signals.

Without them a process sees another's changes at its next poll; with them, at once.
SQLite has no such channel, so there everything stays on the poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("imagegate.store")

CHANNEL = "imagegate_jobs"
WORK = "work"  # payload for "new jobs are waiting"; any other payload is a job id
_RECONNECT_S = 5.0


async def notify(conn: AsyncConnection, payload: str) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


async def listen(url: str, on_message: Callable[[str], None]) -> None:
    """Deliver every notification's payload to ``on_message`` until cancelled; reconnect
    after a lost connection (the poll covers the gap)."""
    import asyncpg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    def relay(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        on_message(payload)

    while True:
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot listen for job changes (%s); polling meanwhile", exc)
            await anyio.sleep(_RECONNECT_S)
            continue
        lost = anyio.Event()
        conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
        try:
            await conn.add_listener(CHANNEL, relay)
            await lost.wait()
            log.warning("lost the job-change listener; reconnecting")
        finally:
            with anyio.CancelScope(shield=True):
                await conn.close(timeout=2)

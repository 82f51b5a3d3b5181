"""Engine creation and the two kinds of database access the services use.

``write()`` is a transaction. On SQLite it starts with ``BEGIN IMMEDIATE`` (a deferred one
that reads and then writes can fail with "database is locked" instead of waiting), and
writers of one process queue on a lock rather than in SQLite's sleeping busy handler;
writers of other processes wait on ``busy_timeout``. ``read()`` runs its statements
outside an explicit transaction (autocommit), which saves round trips and never blocks a
writer under WAL; a read that needs several statements to agree must use ``write()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_BEGIN_OPTION = "imagegate_begin"


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below instead of the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        if mode != "NONE":
            conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if self.dialect == "postgresql":
            # No pre-ping: it costs a round trip on every checkout. A connection the server
            # dropped fails its statement instead, and the pool replaces it.
            kwargs.update(pool_size=10, max_overflow=20, pool_recycle=1800)
        # Every connection here ends its transaction through a context manager, so the
        # pool's reset ROLLBACK on return would only be one more round trip.
        kwargs["pool_reset_on_return"] = None
        self.engine = create_async_engine(url, **kwargs)
        # Reads are single consistent statements; running them outside a transaction
        # saves the BEGIN/COMMIT round trips (PostgreSQL) or statements (SQLite).
        self._read_engine = self.engine.execution_options(
            **(
                {_BEGIN_OPTION: "NONE"}
                if self.dialect == "sqlite"
                else {"isolation_level": "AUTOCOMMIT"}
            )
        )
        # SQLite has one writer at a time; queueing writers here is far cheaper than
        # letting them spin in SQLite's sleeping busy handler.
        self._write_lock = anyio.Lock() if self.dialect == "sqlite" else None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._write_lock is None:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        async with self._write_lock, self.engine.connect() as conn:
            await conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._read_engine.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()

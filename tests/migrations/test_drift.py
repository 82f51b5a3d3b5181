"""Upgrading an empty database to head gives exactly the ORM metadata, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from imagegate.store.engine import Database
from imagegate.store.migrate import upgrade
from imagegate.store.tables import metadata

pytestmark = pytest.mark.anyio


async def test_migrations_match_the_metadata(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db.engine)
        await upgrade(db.engine)  # a second upgrade is a no-op, as on every restart

        def diff(sync_conn: Any) -> list[Any]:
            context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))

        async with db.engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await db.dispose()
    assert differences == []

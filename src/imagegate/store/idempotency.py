"""Idempotency keys of submits. Functions take a connection and never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.tables import idempotency_keys as table

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Seen:
    request_hash: str
    prediction_id: str


async def find(conn: AsyncConnection, account_id: str, key: str, now: datetime) -> Seen | None:
    """The submit this key made in the last 24 h, if any."""
    query = select(table.c.request_hash, table.c.prediction_id).where(
        table.c.account_id == account_id, table.c.key == key, table.c.created_at > now - WINDOW
    )
    row = (await conn.execute(query)).first()
    return Seen(row.request_hash, row.prediction_id) if row else None


async def remember(
    conn: AsyncConnection,
    account_id: str,
    key: str,
    request_hash: str,
    prediction_id: str,
    now: datetime,
) -> None:
    # A use of the key older than the window is forgotten, so the key can be used again.
    await conn.execute(
        delete(table).where(
            table.c.account_id == account_id,
            table.c.key == key,
            table.c.created_at <= now - WINDOW,
        )
    )
    await conn.execute(
        insert(table).values(
            account_id=account_id,
            key=key,
            request_hash=request_hash,
            prediction_id=prediction_id,
            created_at=now,
        )
    )

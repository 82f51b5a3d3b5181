"""Idempotency keys of submits. Functions take a connection and never commit."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, tuple_
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


_KEY_PAIR = tuple_(table.c.account_id, table.c.key)


async def find_many(
    conn: AsyncConnection, pairs: Collection[tuple[str, str]], now: datetime
) -> dict[tuple[str, str], Seen]:
    """``find`` for many ``(account_id, key)`` pairs in one query: the pairs
    used in the last 24 h, each with the submit it made."""
    if not pairs:
        return {}
    query = select(table).where(_KEY_PAIR.in_(sorted(pairs)), table.c.created_at > now - WINDOW)
    return {
        (row["account_id"], row["key"]): Seen(row["request_hash"], row["prediction_id"])
        for row in (await conn.execute(query)).mappings()
    }


async def remember_many(
    conn: AsyncConnection, uses: Sequence[tuple[str, str, str, str]], now: datetime
) -> None:
    """Remember many ``(account_id, key, request_hash,
    prediction_id)``, each pair once: one DELETE of expired uses, one INSERT."""
    if not uses:
        return
    pairs = sorted({(account_id, key) for account_id, key, _, _ in uses})
    await conn.execute(
        delete(table).where(_KEY_PAIR.in_(pairs), table.c.created_at <= now - WINDOW)
    )
    await conn.execute(
        insert(table),
        [
            {
                "account_id": account_id,
                "key": key,
                "request_hash": request_hash,
                "prediction_id": prediction_id,
                "created_at": now,
            }
            for account_id, key, request_hash, prediction_id in uses
        ],
    )

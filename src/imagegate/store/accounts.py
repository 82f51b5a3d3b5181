"""Accounts and their API keys. Functions take a connection and never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.tables import accounts, api_keys


@dataclass(frozen=True)
class KeyRecord:
    id: str
    account_id: str
    name: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


async def insert_account(conn: AsyncConnection, account_id: str, name: str, now: datetime) -> None:
    await conn.execute(insert(accounts).values(id=account_id, name=name, created_at=now))


async def account_exists(conn: AsyncConnection, account_id: str) -> bool:
    row = await conn.execute(select(accounts.c.id).where(accounts.c.id == account_id))
    return row.first() is not None


async def insert_key(
    conn: AsyncConnection,
    *,
    key_id: str,
    account_id: str,
    name: str,
    secret_hash: str,
    now: datetime,
) -> None:
    await conn.execute(
        insert(api_keys).values(
            id=key_id, account_id=account_id, name=name, secret_hash=secret_hash, created_at=now
        )
    )


async def get_key(conn: AsyncConnection, key_id: str) -> KeyRecord | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
    return KeyRecord(**row) if row else None


async def list_keys(conn: AsyncConnection) -> list[KeyRecord]:
    rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).mappings()
    return [KeyRecord(**r) for r in rows]


async def revoke_key(conn: AsyncConnection, key_id: str, now: datetime) -> bool:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


async def touch_key(conn: AsyncConnection, key_id: str, now: datetime) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))

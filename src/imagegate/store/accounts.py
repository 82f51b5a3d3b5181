"""Accounts and their API keys. Functions take a connection and never commit."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.domain.rates import NO_LIMITS, Limits
from imagegate.store.tables import accounts, api_keys


@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    created_at: datetime
    balance_micros: int | None  # None: unmetered
    limits: Limits
    webhook_secret: str | None = None


@dataclass(frozen=True)
class KeyRecord:
    id: str
    account_id: str
    name: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    models: tuple[str, ...] | None = None  # route globs; None: every route
    expires_at: datetime | None = None
    limits: Limits = NO_LIMITS


def _account(row: RowMapping) -> AccountRecord:
    return AccountRecord(
        id=row["id"],
        name=row["name"],
        created_at=row["created_at"],
        balance_micros=row["balance_micros"],
        limits=Limits(row["max_concurrent"], row["rate_limit"]),
        webhook_secret=row["webhook_secret"],
    )


def _key(row: RowMapping) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        models=None if row["models"] is None else tuple(row["models"]),
        expires_at=row["expires_at"],
        limits=Limits(row["max_concurrent"], row["rate_limit"]),
    )


async def insert_account(
    conn: AsyncConnection,
    account_id: str,
    name: str,
    now: datetime,
    *,
    balance_micros: int | None = None,
    limits: Limits = NO_LIMITS,
) -> None:
    await conn.execute(
        insert(accounts).values(
            id=account_id,
            name=name,
            created_at=now,
            webhook_secret=new_webhook_secret(),
            balance_micros=balance_micros,
            max_concurrent=limits.max_concurrent,
            rate_limit=limits.rate_limit,
        )
    )


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def get_account(
    conn: AsyncConnection, account_id: str, *, lock: bool = False
) -> AccountRecord | None:
    """The account; with ``lock``, its row is held until the transaction ends, so that a
    submit's checks of balance and unfinished jobs and its insert are not interleaved with
    another submit's (PostgreSQL; SQLite's write transactions are serial already)."""
    query = select(accounts).where(accounts.c.id == account_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return _account(row) if row else None


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
    models: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    limits: Limits = NO_LIMITS,
) -> None:
    values: dict[str, Any] = {
        "id": key_id,
        "account_id": account_id,
        "name": name,
        "secret_hash": secret_hash,
        "created_at": now,
        "models": None if models is None else list(models),
        "expires_at": expires_at,
        "max_concurrent": limits.max_concurrent,
        "rate_limit": limits.rate_limit,
    }
    await conn.execute(insert(api_keys).values(values))


async def get_key(conn: AsyncConnection, key_id: str) -> KeyRecord | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
    return _key(row) if row else None


async def list_keys(conn: AsyncConnection, account_id: str | None = None) -> list[KeyRecord]:
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if account_id is not None:
        query = query.where(api_keys.c.account_id == account_id)
    return [_key(r) for r in (await conn.execute(query)).mappings()]


async def revoke_key(conn: AsyncConnection, key_id: str, now: datetime) -> bool:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


async def touch_key(conn: AsyncConnection, key_id: str, now: datetime) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


# Built once: a group commit locks its batch's accounts on every flush.
_LOCK_MANY = (
    select(accounts)
    .where(accounts.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(accounts.c.id)
    .with_for_update()
)


async def lock_accounts(
    conn: AsyncConnection, account_ids: Collection[str]
) -> dict[str, AccountRecord]:
    """The accounts that exist among ``account_ids``, by id, their rows held until the
    transaction ends. One statement, locking in id order, so two transactions that lock
    overlapping sets cannot deadlock (PostgreSQL; SQLite's write transactions are serial)."""
    if not account_ids:
        return {}
    rows = (await conn.execute(_LOCK_MANY, {"ids": sorted(account_ids)})).mappings()
    return {row["id"]: _account(row) for row in rows}

"""Balances and the ledger. Every change of a balance writes its ledger row in the same
transaction, so a balance always equals the sum of its account's rows. Functions take a
connection and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.tables import accounts, ledger


class Kind(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"
    TOPUP = "topup"


@dataclass(frozen=True)
class Entry:
    id: int
    account_id: str
    prediction_id: str | None
    kind: Kind
    amount_micros: int
    created_at: datetime


async def _record(
    conn: AsyncConnection,
    account_id: str,
    kind: Kind,
    amount: int,
    now: datetime,
    prediction_id: str | None,
) -> None:
    await conn.execute(
        insert(ledger).values(
            account_id=account_id,
            prediction_id=prediction_id,
            kind=kind.value,
            amount_micros=amount,
            created_at=now,
        )
    )


# Built once: a group commit charges its batch's jobs on every flush.
_DEBIT = (
    update(accounts)
    .where(
        accounts.c.id == bindparam("account_id"), accounts.c.balance_micros >= bindparam("total")
    )
    .values(balance_micros=accounts.c.balance_micros - bindparam("total"))
)


async def debit_many(
    conn: AsyncConnection, account_id: str, charges: Sequence[tuple[str, int]], now: datetime
) -> bool:
    """Charge a metered account for several predictions, ``(prediction_id, amount)`` each:
    one conditional UPDATE of the total, so however submits race a balance never goes
    below zero, and a charge row per prediction. False, with nothing written, when the
    balance does not cover the total or the account is unmetered."""
    total = sum(amount for _, amount in charges)
    result = await conn.execute(_DEBIT, {"account_id": account_id, "total": total})
    if result.rowcount != 1:
        return False
    await conn.execute(
        insert(ledger),
        [
            {
                "account_id": account_id,
                "prediction_id": prediction_id,
                "kind": Kind.CHARGE.value,
                "amount_micros": -amount,
                "created_at": now,
            }
            for prediction_id, amount in charges
        ],
    )
    return True


async def credit(
    conn: AsyncConnection,
    account_id: str,
    amount: int,
    kind: Kind,
    now: datetime,
    prediction_id: str | None = None,
) -> bool:
    """Add ``amount`` to a metered account; False for an unmetered or missing one."""
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.balance_micros.is_not(None))
        .values(balance_micros=accounts.c.balance_micros + amount)
    )
    if result.rowcount != 1:
        return False
    await _record(conn, account_id, kind, amount, now, prediction_id)
    return True


async def refund(conn: AsyncConnection, prediction_id: str, now: datetime) -> int:
    """Give back a prediction's charge, once: the micro-dollars refunded, 0 when there
    was no charge or it was refunded already."""
    rows = (
        await conn.execute(
            select(ledger.c.kind, ledger.c.account_id, ledger.c.amount_micros).where(
                ledger.c.prediction_id == prediction_id
            )
        )
    ).all()
    kinds = {row.kind: row for row in rows}
    charge = kinds.get(Kind.CHARGE.value)
    if charge is None or Kind.REFUND.value in kinds:
        return 0
    amount = -int(charge.amount_micros)
    await credit(conn, charge.account_id, amount, Kind.REFUND, now, prediction_id)
    return amount


async def balance(conn: AsyncConnection, account_id: str) -> int | None:
    query = select(accounts.c.balance_micros).where(accounts.c.id == account_id)
    value = (await conn.execute(query)).scalar_one_or_none()
    return None if value is None else int(value)


async def total(conn: AsyncConnection, account_id: str) -> int:
    query = select(func.coalesce(func.sum(ledger.c.amount_micros), 0)).where(
        ledger.c.account_id == account_id
    )
    return int((await conn.execute(query)).scalar_one())


async def recent(conn: AsyncConnection, account_id: str, limit: int = 20) -> list[Entry]:
    query = (
        select(ledger)
        .where(ledger.c.account_id == account_id)
        .order_by(ledger.c.id.desc())
        .limit(limit)
    )
    return [
        Entry(
            id=row["id"],
            account_id=row["account_id"],
            prediction_id=row["prediction_id"],
            kind=Kind(row["kind"]),
            amount_micros=int(row["amount_micros"]),
            created_at=row["created_at"],
        )
        for row in (await conn.execute(query)).mappings()
    ]

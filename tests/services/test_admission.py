"""Admission of a group commit's batch, on SQLite and PostgreSQL: the jobs are decided in
order, as if each had its own transaction, and the batch's writes are shared."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import anyio
import pytest
from sqlalchemy import func, select

from imagegate.domain.jobs import Job
from imagegate.domain.rates import NO_LIMITS, Limits
from imagegate.errors import InsufficientBalanceError, RateLimitedError
from imagegate.services.admission import ChargeFailedError
from imagegate.services.clock import utc_now
from imagegate.services.group_commit import Idempotency, IdempotencyConflict, JobInserter
from imagegate.store import accounts, idempotency, jobs, ledger
from imagegate.store.engine import Database
from imagegate.store.tables import ledger as ledger_table
from imagegate.store.tables import predictions
from tests.conftest import SAMPLE_TIME, sample_job

pytestmark = pytest.mark.anyio

CENT = 10_000  # micro-dollars


def job(n: int, account_id: str = "acct", price: int = 0, key_id: str | None = None) -> Job:
    return replace(sample_job(n), account_id=account_id, price_micros=price, key_id=key_id)


async def add_account(
    db: Database, account_id: str, balance: int | None = None, limits: Limits = NO_LIMITS
) -> None:
    async with db.write() as conn:
        await accounts.insert_account(
            conn, account_id, account_id, SAMPLE_TIME, balance_micros=balance, limits=limits
        )


async def one_batch(inserter: JobInserter, *submits: tuple[Job, dict[str, Any]]) -> list[Any]:
    """Insert the jobs in one flush, queued in the order given: what each insert returned
    (the existing job's id or None) or raised."""
    outcomes: list[Any] = [None] * len(submits)

    async def insert(i: int, new: Job, options: dict[str, Any]) -> None:
        try:
            outcomes[i] = await inserter.insert(new, **options)
        except Exception as exc:
            outcomes[i] = exc

    async with anyio.create_task_group() as group, inserter._flushing:
        for i, (new, options) in enumerate(submits):
            group.start_soon(insert, i, new, options)
            await anyio.wait_all_tasks_blocked()
        assert len(inserter._queue) == len(submits)
    return outcomes


async def stored_ids(db: Database) -> set[str]:
    async with db.read() as conn:
        return set((await conn.execute(select(predictions.c.id))).scalars())


async def charges(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(ledger_table.c.prediction_id, ledger_table.c.amount_micros).where(
                ledger_table.c.kind == ledger.Kind.CHARGE.value
            )
        )
        return {row.prediction_id: int(row.amount_micros) for row in rows}


async def test_a_batch_admits_in_order_the_jobs_the_balance_covers_and_charges_each_once(
    db: Database,
) -> None:
    await add_account(db, "m", balance=10 * CENT)
    prices = [3 * CENT, 5 * CENT, 4 * CENT, 2 * CENT, 1 * CENT]
    batch = [job(n, "m", price) for n, price in enumerate(prices)]
    # The unmetered account's job rides in the same batch, charged nothing.
    batch.append(job(9, "acct", 7 * CENT))
    outcomes = await one_batch(JobInserter(db, utc_now), *((j, {}) for j in batch))

    admitted = {j.id for j, outcome in zip(batch, outcomes, strict=True) if outcome is None}
    assert admitted == {batch[0].id, batch[1].id, batch[3].id, batch[5].id}
    assert await stored_ids(db) == admitted
    third, fifth = outcomes[2], outcomes[4]
    assert isinstance(third, InsufficientBalanceError)
    assert third.message == "insufficient balance: this job costs $0.04 and the balance is $0.02"
    assert isinstance(fifth, InsufficientBalanceError)
    assert fifth.message == "insufficient balance: this job costs $0.01 and the balance is $0.00"
    assert await charges(db) == {batch[n].id: -prices[n] for n in (0, 1, 3)}
    async with db.read() as conn:
        assert await ledger.balance(conn, "m") == 0
        assert await ledger.balance(conn, "acct") is None
        assert await ledger.total(conn, "acct") == 0


async def test_a_batch_stops_at_the_accounts_and_the_keys_unfinished_limits(
    db: Database,
) -> None:
    await add_account(db, "limited", limits=Limits(max_concurrent=3))
    async with db.write() as conn:
        await jobs.insert_jobs(conn, [job(0, "limited")])
    batch = [
        (job(1, "limited", key_id="k1"), {"key_max_concurrent": 1}),
        (job(2, "limited", key_id="k1"), {"key_max_concurrent": 1}),  # k1's limit
        (job(3, "limited", key_id="k2"), {}),
        (job(4, "limited", key_id="k2"), {}),  # the account's limit
    ]
    outcomes = await one_batch(JobInserter(db, utc_now), *batch)

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], RateLimitedError) and isinstance(outcomes[3], RateLimitedError)
    assert outcomes[1].message == "this key may have 1 unfinished jobs at once; wait for one to end"
    assert outcomes[3].message == (
        "this account may have 3 unfinished jobs at once; wait for one to end"
    )
    assert outcomes[1].headers == outcomes[3].headers == {"Retry-After": "2"}
    assert await stored_ids(db) == {job(n).id for n in (0, 1, 3)}


async def test_one_idempotency_key_twice_in_a_batch_makes_one_job_and_one_charge(
    db: Database,
) -> None:
    await add_account(db, "m", balance=10 * CENT)
    same, other = Idempotency("order-1", "hash-a"), Idempotency("order-1", "hash-b")
    first, retry, conflicting = job(1, "m", CENT), job(2, "m", CENT), job(3, "m", CENT)
    outcomes = await one_batch(
        JobInserter(db, utc_now),
        (first, {"idempotency": same}),
        (retry, {"idempotency": same}),
        (conflicting, {"idempotency": other}),
    )

    assert outcomes[:2] == [None, first.id]
    assert isinstance(outcomes[2], IdempotencyConflict)
    assert await stored_ids(db) == {first.id}
    assert await charges(db) == {first.id: -CENT}
    async with db.read() as conn:
        seen = await idempotency.find(conn, "m", "order-1", utc_now())
    assert seen == idempotency.Seen("hash-a", first.id)


async def test_a_key_whose_first_submit_was_refused_is_free_for_the_next(
    db: Database,
) -> None:
    await add_account(db, "m", balance=2 * CENT)
    key = Idempotency("order-2", "hash")
    too_dear, fits = job(1, "m", 3 * CENT), job(2, "m", 2 * CENT)
    outcomes = await one_batch(
        JobInserter(db, utc_now), (too_dear, {"idempotency": key}), (fits, {"idempotency": key})
    )

    assert isinstance(outcomes[0], InsufficientBalanceError)
    assert outcomes[1] is None
    assert await stored_ids(db) == {fits.id}
    assert await charges(db) == {fits.id: -2 * CENT}


async def test_an_account_the_batch_cannot_charge_gets_a_clear_error_and_nothing_written(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Cannot happen while the row lock holds; the conditional UPDATE is the safety net.
    await add_account(db, "m", balance=10 * CENT)
    await add_account(db, "n", balance=10 * CENT)
    debit_many = ledger.debit_many

    async def refuse_m(conn: Any, account_id: str, *args: Any) -> bool:
        return account_id != "m" and await debit_many(conn, account_id, *args)

    monkeypatch.setattr(ledger, "debit_many", refuse_m)
    key = Idempotency("order-3", "hash")
    outcomes = await one_batch(
        JobInserter(db, utc_now),
        (job(1, "m", CENT), {"idempotency": key}),
        (job(2, "m", CENT), {"idempotency": key}),
        (job(3, "m"), {}),  # free: nothing to charge
        (job(4, "n", CENT), {}),
    )

    refused, free, other = outcomes[:2], outcomes[2], outcomes[3]
    assert all(isinstance(o, ChargeFailedError) for o in refused)
    assert free is None and other is None
    assert await stored_ids(db) == {job(3).id, job(4).id}
    assert await charges(db) == {job(4).id: -CENT}
    async with db.read() as conn:
        assert await ledger.balance(conn, "m") == 10 * CENT
        assert await idempotency.find(conn, "m", "order-3", utc_now()) is None
        count = select(func.count()).select_from(ledger_table)
        assert (await conn.execute(count)).scalar_one() == 1

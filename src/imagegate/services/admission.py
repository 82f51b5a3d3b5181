"""What a submit must pass inside the transaction that inserts its job: the account's and
the key's limits on unfinished jobs, and the charge. Both run under the account's row
lock, so however many submits race, a balance never goes below zero and a limit of K
unfinished jobs admits K."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.domain.jobs import Job
from imagegate.domain.pricing import format_usd
from imagegate.errors import InsufficientBalanceError, NotFoundError, RateLimitedError
from imagegate.store import accounts, jobs, ledger
from imagegate.store.accounts import AccountRecord

# A job slot frees when some job ends; a client told to come back soon finds out cheaply.
_CONCURRENCY_RETRY_S = 2


async def locked_account(conn: AsyncConnection, job: Job) -> AccountRecord:
    """The job's account, its row held for the rest of the transaction."""
    account = await accounts.get_account(conn, job.account_id, lock=True)
    if account is None:
        raise NotFoundError(f"account {job.account_id!r} not found")
    return account


async def admit(
    conn: AsyncConnection,
    job: Job,
    account: AccountRecord,
    *,
    key_max_concurrent: int | None,
    now: datetime,
) -> None:
    """Charge ``job`` and check its limits, or raise without writing anything. ``account``
    must come from ``locked_account`` in the same transaction."""
    limit = account.limits.max_concurrent
    if limit is not None and await jobs.count_unfinished(conn, account_id=job.account_id) >= limit:
        raise RateLimitedError(
            f"this account may have {limit} unfinished jobs at once; wait for one to end",
            retry_after_s=_CONCURRENCY_RETRY_S,
        )
    if (
        key_max_concurrent is not None
        and job.key_id is not None
        and await jobs.count_unfinished(conn, key_id=job.key_id) >= key_max_concurrent
    ):
        raise RateLimitedError(
            f"this key may have {key_max_concurrent} unfinished jobs at once; wait for one to end",
            retry_after_s=_CONCURRENCY_RETRY_S,
        )
    if job.price_micros == 0 or account.balance_micros is None:
        return
    if not await ledger.debit(conn, job.account_id, job.price_micros, now, job.id):
        raise InsufficientBalanceError(
            f"insufficient balance: this job costs {format_usd(job.price_micros)} and the "
            f"balance is {format_usd(account.balance_micros)}"
        )

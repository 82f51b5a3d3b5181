"""What submits must pass inside the transaction that inserts their jobs: the account's and
the key's limits on unfinished jobs, and the charge.

A group commit admits its batch at once. Each account's row is locked and read once, the
unfinished jobs are counted once per account and per key (only where a limit applies),
the jobs are decided in order against running totals, and each account is charged for
all its admitted jobs in one conditional UPDATE. The rows stay locked until the
transaction ends, so however many submits race, a balance never goes below zero and a
limit of K unfinished jobs admits K."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.domain.jobs import Job
from imagegate.domain.pricing import format_usd
from imagegate.errors import (
    InsufficientBalanceError,
    InternalError,
    NotFoundError,
    RateLimitedError,
)
from imagegate.store import accounts, jobs, ledger
from imagegate.store.accounts import AccountRecord

log = logging.getLogger("imagegate.admission")

# A job slot frees when some job ends; a client told to come back soon finds out cheaply.
_CONCURRENCY_RETRY_S = 2


class ChargeFailedError(InternalError):
    default_message = (
        "the account's balance changed while this submit was admitted; "
        "nothing was charged, submit it again"
    )


@dataclass
class _Account:
    record: AccountRecord
    # The locked balance less the prices admitted so far; None: unmetered.
    balance: int | None
    # Unfinished jobs, counted only under a limit, plus those admitted so far.
    unfinished: int | None
    charged: list[Job] = field(default_factory=list)


class Admission:
    """One batch's admission, inside its transaction: ``begin`` locks and reads, ``admit``
    decides a job at a time without touching the database, ``charge`` writes."""

    def __init__(self, accounts: dict[str, _Account], key_unfinished: dict[str, int]) -> None:
        self._accounts = accounts
        self._key_unfinished = key_unfinished

    @classmethod
    async def begin(
        cls, conn: AsyncConnection, batch: Sequence[tuple[Job, int | None]]
    ) -> Admission:
        """Lock the accounts of ``batch`` (jobs with their key's ``max_concurrent``) and
        count the unfinished jobs its limits need."""
        locked = await accounts.lock_accounts(conn, {job.account_id for job, _ in batch})
        limited = sorted(a.id for a in locked.values() if a.limits.max_concurrent is not None)
        keys = sorted(
            {
                job.key_id
                for job, key_limit in batch
                if key_limit is not None and job.key_id is not None and job.account_id in locked
            }
        )
        by_account = await jobs.count_unfinished_by_account(conn, limited)
        by_key = await jobs.count_unfinished_by_key(conn, keys)
        states = {
            account_id: _Account(record, record.balance_micros, by_account.get(account_id))
            for account_id, record in locked.items()
        }
        return cls(states, by_key)

    def check_account(self, job: Job) -> None:
        """Raise ``NotFoundError`` unless the job's account exists."""
        self._state(job)

    def _state(self, job: Job) -> _Account:
        state = self._accounts.get(job.account_id)
        if state is None:
            raise NotFoundError(f"account {job.account_id!r} not found")
        return state

    def admit(self, job: Job, *, key_max_concurrent: int | None) -> None:
        """Admit ``job`` after the batch's jobs admitted before it, or raise. Only the
        running totals change; ``charge`` writes the charges."""
        state = self._state(job)
        limit = state.record.limits.max_concurrent
        if limit is not None and state.unfinished is not None and state.unfinished >= limit:
            raise RateLimitedError(
                f"this account may have {limit} unfinished jobs at once; wait for one to end",
                retry_after_s=_CONCURRENCY_RETRY_S,
            )
        key_unfinished = None if job.key_id is None else self._key_unfinished.get(job.key_id)
        if (
            key_max_concurrent is not None
            and key_unfinished is not None
            and key_unfinished >= key_max_concurrent
        ):
            raise RateLimitedError(
                f"this key may have {key_max_concurrent} unfinished jobs at once; "
                "wait for one to end",
                retry_after_s=_CONCURRENCY_RETRY_S,
            )
        if job.price_micros != 0 and state.balance is not None:
            if state.balance < job.price_micros:
                raise InsufficientBalanceError(
                    f"insufficient balance: this job costs {format_usd(job.price_micros)} "
                    f"and the balance is {format_usd(state.balance)}"
                )
            state.balance -= job.price_micros
            state.charged.append(job)
        if state.unfinished is not None:
            state.unfinished += 1
        if job.key_id is not None and key_unfinished is not None:
            self._key_unfinished[job.key_id] = key_unfinished + 1

    async def charge(self, conn: AsyncConnection, now: datetime) -> list[Job]:
        """Debit each account the prices of its admitted jobs, with a ledger row each.
        Returns the jobs whose account could not be charged, with nothing written for
        them: none, while the rows stay locked (the UPDATE is conditional all the same)."""
        refused: list[Job] = []
        for account_id in sorted(self._accounts):
            charged = self._accounts[account_id].charged
            if not charged:
                continue
            debits = [(job.id, job.price_micros) for job in charged]
            if not await ledger.debit_many(conn, account_id, debits, now):
                log.error(
                    "the balance did not cover the jobs admitted against it; refused them",
                    extra={"account_id": account_id, "jobs": len(charged)},
                )
                refused += charged
        return refused

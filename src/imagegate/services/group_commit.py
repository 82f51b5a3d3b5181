"""Group commit for job inserts: submits that arrive while one insert transaction is in
flight are written together in the next one.

A transaction costs far more than one more row in it (SQLite takes the single write lock
and syncs the WAL; PostgreSQL makes round trips and flushes its log), so under concurrent
load this turns N commits into a few, with no added delay when requests come one by one:
nothing waits for a batch to fill, a batch is simply whatever queued up meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.domain.jobs import Job
from imagegate.errors import BadRequestError, ImagegateError
from imagegate.services.admission import admit, locked_account
from imagegate.services.clock import Clock
from imagegate.store import idempotency
from imagegate.store import jobs as repo
from imagegate.store.engine import Database
from imagegate.store.notifications import WORK, notify

_MAX_BATCH = 256


class IdempotencyConflict(BadRequestError):
    default_message = (
        "Idempotency-Key: this key was used with a different request in the last 24 hours"
    )


@dataclass(frozen=True)
class Idempotency:
    key: str
    request_hash: str


@dataclass
class _Pending:
    job: Job
    key_max_concurrent: int | None
    idempotency: Idempotency | None
    done: bool = False
    error: BaseException | None = None
    # Set when the submit's Idempotency-Key already made a job: that job's id.
    existing: str | None = None


class JobInserter:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._queue: list[_Pending] = []
        # anyio's lock is fair: waiters get it in arrival order, so every queued job is
        # flushed by the first of them to get the lock.
        self._flushing = anyio.Lock()

    async def insert(
        self,
        job: Job,
        *,
        key_max_concurrent: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> str | None:
        """Return once ``job`` is committed, charged and within its limits; raise if it
        was refused (balance, limits) or its transaction failed. When ``idempotency``'s
        key already made a job with the same request, nothing is written and that job's
        id is returned; a different request under the key is a 400."""
        pending = _Pending(job, key_max_concurrent, idempotency)
        self._queue.append(pending)
        async with self._flushing:
            if not pending.done:
                await self._flush()
        if pending.error is not None:
            raise pending.error
        return pending.existing

    async def _seen(self, conn: AsyncConnection, job: Job, key: Idempotency) -> str | None:
        # The caller holds the account's row lock, so two racing submits with one key
        # cannot both miss each other (PostgreSQL; SQLite's write transactions are serial).
        seen = await idempotency.find(conn, job.account_id, key.key, self.clock())
        if seen is None:
            return None
        if seen.request_hash != key.request_hash:
            raise IdempotencyConflict()
        return seen.prediction_id

    async def _flush(self) -> None:
        batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
        # Shielded: the batch carries other requests' jobs, so one client going away
        # must not roll back everyone's insert.
        with anyio.CancelScope(shield=True):
            try:
                async with self.db.write() as conn:
                    for p in batch:
                        # A savepoint would cost a round trip per job; admit raises
                        # before it writes, so a refused job leaves nothing to undo.
                        try:
                            account = await locked_account(conn, p.job)
                            if p.idempotency is not None:
                                p.existing = await self._seen(conn, p.job, p.idempotency)
                                if p.existing is not None:
                                    continue
                            await admit(
                                conn,
                                p.job,
                                account,
                                key_max_concurrent=p.key_max_concurrent,
                                now=self.clock(),
                            )
                        except ImagegateError as exc:
                            p.error = exc
                            continue
                        # One at a time: the next job's limits count this one.
                        await repo.insert_jobs(conn, [p.job])
                        if p.idempotency is not None:
                            await idempotency.remember(
                                conn,
                                p.job.account_id,
                                p.idempotency.key,
                                p.idempotency.request_hash,
                                p.job.id,
                                self.clock(),
                            )
                    await notify(conn, WORK)
            except Exception as exc:
                for p in batch:
                    p.error = exc
            finally:
                for p in batch:
                    p.done = True

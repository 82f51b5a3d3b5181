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
from imagegate.services.admission import Admission, ChargeFailedError
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

    async def _flush(self) -> None:
        batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
        # Shielded: the batch carries other requests' jobs, so one client going away
        # must not roll back everyone's insert.
        with anyio.CancelScope(shield=True):
            try:
                async with self.db.write() as conn:
                    await self._write(conn, batch)
            except Exception as exc:
                for p in batch:
                    p.error = exc
            finally:
                for p in batch:
                    p.done = True

    async def _write(self, conn: AsyncConnection, batch: list[_Pending]) -> None:
        """Admit the batch's jobs in order and write the admitted ones: a statement per
        kind of row, however many jobs (and one conditional UPDATE per charged account).
        Refused jobs get their error and leave nothing behind."""
        now = self.clock()
        gate = await Admission.begin(conn, [(p.job, p.key_max_concurrent) for p in batch])
        # Read under the accounts' row locks, so two racing submits with one key cannot
        # both miss each other (PostgreSQL; SQLite's write transactions are serial).
        seen = await idempotency.find_many(
            conn,
            {(p.job.account_id, p.idempotency.key) for p in batch if p.idempotency is not None},
            now,
        )
        admitted: list[_Pending] = []
        for p in batch:
            try:
                gate.check_account(p.job)
                if p.idempotency is not None:
                    p.existing = _existing(seen, p.job, p.idempotency)
                    if p.existing is not None:
                        continue
                gate.admit(p.job, key_max_concurrent=p.key_max_concurrent)
            except ImagegateError as exc:
                p.error = exc
                continue
            admitted.append(p)
            if p.idempotency is not None:
                # A later submit of this batch with the key finds this job, as it would
                # have had it come one transaction later.
                key = (p.job.account_id, p.idempotency.key)
                seen[key] = idempotency.Seen(p.idempotency.request_hash, p.job.id)
        if refused := {job.id for job in await gate.charge(conn, now)}:
            for p in batch:
                if p.job.id in refused or p.existing in refused:
                    p.error, p.existing = ChargeFailedError(), None
            admitted = [p for p in admitted if p.error is None]
        if not admitted:
            return
        await repo.insert_jobs(conn, [p.job for p in admitted])
        await idempotency.remember_many(
            conn,
            [
                (p.job.account_id, p.idempotency.key, p.idempotency.request_hash, p.job.id)
                for p in admitted
                if p.idempotency is not None
            ],
            now,
        )
        await notify(conn, WORK)


def _existing(
    seen: dict[tuple[str, str], idempotency.Seen], job: Job, key: Idempotency
) -> str | None:
    """The job ``key`` already made for the same request, if any; a different request
    under the key is a 400."""
    found = seen.get((job.account_id, key.key))
    if found is None:
        return None
    if found.request_hash != key.request_hash:
        raise IdempotencyConflict()
    return found.prediction_id

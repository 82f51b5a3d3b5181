"""The worker's side of a job: claim, keep the lease, read inputs, finish exactly once."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from datetime import timedelta

from imagegate.domain.jobs import MAX_ATTEMPTS, Job
from imagegate.domain.registry import RouteSpec
from imagegate.domain.signing import sign
from imagegate.queue import leases
from imagegate.services.clock import Clock
from imagegate.services.media import MediaService
from imagegate.services.signals import JobSignals
from imagegate.settings import Settings
from imagegate.store import ledger
from imagegate.store.engine import Database
from imagegate.store.jobs import get_job
from imagegate.store.notifications import WORK, notify

log = logging.getLogger("imagegate.execution")


class ExecutionService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        media: MediaService,
        signals: JobSignals,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.db = db
        self.media = media
        self.signals = signals
        self.clock = clock

    async def claim(self, worker_id: str, lane: str = "local") -> Job | None:
        """The next job to run, or None. A job whose worker died mid-run comes back here
        once its lease lapses; after MAX_ATTEMPTS such deaths it is failed instead, so one
        poisonous request cannot crash workers forever."""
        while True:
            async with self.db.write() as conn:
                job = await leases.claim_next(
                    conn, worker_id, self.clock(), self.settings.lease_s, lane
                )
            if job is None:
                return None
            if job.attempts <= MAX_ATTEMPTS:
                self.signals.job_changed(job.id)
                return job
            await self.fail(
                job,
                worker_id,
                f"the worker stopped {MAX_ATTEMPTS} times while running this job",
                execution_ms=0,
            )

    async def heartbeat(
        self, job: Job, worker_id: str, progress: tuple[int, int] | None = None
    ) -> bool:
        """Extend the job's lease, recording the model's (step, total) when given; False
        once the job is no longer this worker's (cancelled, or taken over)."""
        async with self.db.write() as conn:
            return await leases.heartbeat(
                conn, job.id, worker_id, self.clock(), self.settings.lease_s, progress
            )

    def upstream_webhook_url(self, job: Job) -> str | None:
        """Where a provider may call when ``job`` ends there, or None without a public
        address. The path carries an HMAC of the job id, so only someone given the URL
        can wake the job (and waking it only makes the worker read the job sooner)."""
        base = self.settings.public_base_url
        if not base:
            return None
        return f"{base}/upstream/v1/hooks/{job.id}/{self._hook_token(job.id)}"

    def _hook_token(self, job_id: str) -> str:
        return sign(self.media.secret, f"upstream-hook:{job_id}", 0)

    async def upstream_called(self, job_id: str, token: str) -> bool:
        """A provider says the job ended: wake whoever waits for it, in any process."""
        if not hmac.compare_digest(self._hook_token(job_id), token):
            return False
        async with self.db.write() as conn:
            await notify(conn, job_id)
        self.signals.job_changed(job_id)
        return True

    async def current(self, job_id: str) -> Job | None:
        async with self.db.read() as conn:
            return await get_job(conn, job_id)

    async def references(self, job: Job) -> list[bytes]:
        return [await self.media.blobs.get(key) for key in job.reference_keys]

    async def complete(
        self,
        job: Job,
        worker_id: str,
        files: Sequence[bytes],
        *,
        extension: str,
        nsfw: Sequence[bool],
        inference_ms: int,
        execution_ms: int,
        ran_on: str | None = None,
        cost_micros: int = 0,
    ) -> bool:
        # Each attempt writes under its own prefix: a stalled worker whose lease was taken
        # over must never overwrite, or on discarding delete, the files of the attempt
        # that completed the job.
        keys = [
            f"outputs/{job.id}/{job.attempts}/{index}.{extension}" for index in range(len(files))
        ]
        for key, data in zip(keys, files, strict=True):
            await self.media.blobs.put(key, data)
        async with self.db.write() as conn:
            done = await leases.complete(
                conn,
                job.id,
                worker_id,
                outputs=keys,
                nsfw=nsfw,
                execution_ms=execution_ms,
                inference_ms=inference_ms,
                now=self.clock(),
                ran_on=ran_on,
                cost_micros=cost_micros,
            )
            if done:
                await notify(conn, job.id)
        if not done:
            # Cancelled, or the lease passed to another worker: its result is not ours to keep.
            for key in keys:
                await self.media.blobs.delete(key)
            log.info("result discarded: job no longer held", extra={"prediction_id": job.id})
        self.signals.job_changed(job.id)
        return done

    async def record_upstream(
        self,
        job: Job,
        worker_id: str,
        state: str | None,
        *,
        key: str | None = None,
        upstream_id: str | None = None,
    ) -> bool:
        """Store the job's state at the provider before acting on it; False once the job
        is no longer this worker's."""
        async with self.db.write() as conn:
            return await leases.record_upstream(
                conn, job.id, worker_id, state=state, key=key, upstream_id=upstream_id
            )

    async def hand_over(self, job: Job, worker_id: str, lanes: Sequence[str], reason: str) -> bool:
        """Move the job to the next target of its plan (``lanes[i]`` is target i's lane);
        False when its plan is spent or it is no longer this worker's. The charge stays:
        the customer's price was fixed at submit, wherever the job ends up running."""
        target = job.next_target
        if target is None:
            return False
        async with self.db.write() as conn:
            moved = await leases.hand_over(
                conn, job.id, worker_id, target=target, lane=lanes[target], hop=job.hop + 1
            )
            if moved:
                await notify(conn, WORK)
        if moved:
            log.warning(
                "job handed over to target %d: %s",
                target,
                reason,
                extra={"prediction_id": job.id, "route": job.route},
            )
            self.signals.job_changed(job.id)
            self.signals.work_available()
        return moved

    async def spill_stale(self, specs: Sequence[RouteSpec]) -> int:
        """Move jobs of "spill" routes that have waited for a model slot longer than the
        route's ``spill_after_s`` to their next target (the provider): the local model
        may be down, and then nothing else would ever move them. How many moved."""
        moved = 0
        for spec in specs:
            before = self.clock() - timedelta(seconds=spec.spill_after_s)
            async with self.db.write() as conn:
                for job in await leases.waiting_since(conn, spec.route, before):
                    target = job.next_target
                    if target is None:
                        continue
                    lane = spec.lanes[target]
                    if await leases.reroute(conn, job, target=target, lane=lane, hop=job.hop + 1):
                        moved += 1
                if moved:
                    await notify(conn, WORK)
        if moved:
            log.warning("%d jobs waited too long for the local model; sent on", moved)
            self.signals.work_available()
        return moved

    async def fail(self, job: Job, worker_id: str, error: str, *, execution_ms: int) -> bool:
        async with self.db.write() as conn:
            now = self.clock()
            done = await leases.fail(
                conn, job.id, worker_id, error=error, execution_ms=execution_ms, now=now
            )
            if done:
                # In the transaction that ends the job: the refund happens exactly when
                # the job fails, once, whatever crashes before or after.
                await ledger.refund(conn, job.id, now)
                await notify(conn, job.id)
        self.signals.job_changed(job.id)
        return done

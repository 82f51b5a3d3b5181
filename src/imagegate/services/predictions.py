"""The prediction use cases the API exposes: submit, read, wait, list, cancel."""

from __future__ import annotations

import base64
import hashlib
import logging
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio

from imagegate.domain.ids import new_prediction_id
from imagegate.domain.images import CONTENT_TYPE_BY_EXTENSION
from imagegate.domain.jobs import CANCELLED_ERROR, Job, JobStatus
from imagegate.domain.prompt_policy import PromptPolicy
from imagegate.domain.registry import Registry
from imagegate.domain.requests import build_params, check_prompt, check_webhook, resolve_seed
from imagegate.domain.sizes import output_size
from imagegate.errors import (
    BadRequestError,
    ContentBlockedError,
    NotFoundError,
    PermissionDeniedError,
)
from imagegate.services.accounts import Principal
from imagegate.services.clock import Clock, epoch, to_store_time
from imagegate.services.group_commit import Idempotency, IdempotencyConflict, JobInserter
from imagegate.services.media import MediaService
from imagegate.services.memo import BoundedMemo
from imagegate.services.routing import Router
from imagegate.services.safe_fetch import FetchError, UnsafeURLError, check_url
from imagegate.services.signals import JobSignals
from imagegate.settings import Settings
from imagegate.store import idempotency, ledger
from imagegate.store import jobs as repo
from imagegate.store.engine import Database
from imagegate.store.notifications import notify
from imagegate.wire import (
    GenerationRequest,
    JobProgress,
    ListQuery,
    Prediction,
    PredictionUrls,
    Timings,
)

log = logging.getLogger("imagegate.predictions")

_ENDED_CACHE_LIMIT = 10_000
SYNC_TIMEOUT_ERROR = "Sync mode timed out; poll urls.get for the result"


# Events move forwards only: a job whose lease lapsed and that waits again ("created")
# is reported when it runs on, not as a step back.
_RANK = {
    JobStatus.CREATED: 0,
    JobStatus.PROCESSING: 1,
    JobStatus.COMPLETED: 2,
    JobStatus.FAILED: 2,
}


def _job_key(job: Job) -> tuple[int, int]:
    return _RANK[job.status], job.progress_step


def _event_key(event_id: str | None) -> tuple[int, int] | None:
    try:
        rank, step = (event_id or "").split("-")
        return int(rank), int(step)
    except ValueError:
        return None


def request_hash(route: str, task: str, request: GenerationRequest) -> str:
    """What makes two submits "the same request" for an Idempotency-Key."""
    body = request.model_dump_json(exclude_none=True)
    return hashlib.sha256(f"{route}\n{task}\n{body}".encode()).hexdigest()


class PredictionService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        registry: Registry,
        media: MediaService,
        signals: JobSignals,
        clock: Clock,
        policy: PromptPolicy,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.db = db
        self.registry = registry
        self.media = media
        self.signals = signals
        self.clock = clock
        self._ended: BoundedMemo[str, Job] = BoundedMemo(_ENDED_CACHE_LIMIT)
        self._ended_wire: BoundedMemo[tuple[str, str], Prediction] = BoundedMemo(_ENDED_CACHE_LIMIT)
        self.inserter = JobInserter(db, clock)
        self.router = Router(settings, db, clock)

    async def submit(
        self,
        principal: Principal,
        route: str,
        task: str,
        request: GenerationRequest,
        *,
        idempotency_key: str | None = None,
    ) -> Job:
        """Validate, store the references, and insert the job with its charge. With an
        ``idempotency_key`` seen with the same request in the last 24 h, the job that
        request made instead (no second job, no second charge)."""
        spec = self.registry.lookup(route, task)
        key = None
        if idempotency_key is not None:
            key = Idempotency(idempotency_key, request_hash(route, task, request))
            # A retry of a submit that went through is answered before any work.
            async with self.db.read() as conn:
                seen = await idempotency.find(
                    conn, principal.account_id, idempotency_key, self.clock()
                )
            if seen is not None:
                if seen.request_hash != key.request_hash:
                    raise IdempotencyConflict()
                return await self._finish_submit(
                    request, await self.get(principal, seen.prediction_id)
                )
        if not principal.may_use(spec.route):
            raise PermissionDeniedError(
                f"this API key may not use model {spec.route!r}; it may use: "
                + ", ".join(principal.models or ())
            )
        check_prompt(request, self.settings.max_prompt_length)
        if (term := self.policy.violation(request.prompt)) is not None:
            # The matched term goes to the log for the operator, never back to the client.
            log.warning(
                "prompt matched the policy (%s)",
                spec.safety,
                extra={"route": spec.route, "term": term, "account_id": principal.account_id},
            )
            if spec.safety == "block":
                raise ContentBlockedError()
        if request.webhook:
            check_webhook(request.webhook)
            try:
                await check_url(request.webhook, self.media.fetch_policy)
            except (UnsafeURLError, FetchError) as exc:
                raise BadRequestError(f"webhook: {exc}") from exc
        if task in ("image-to-image", "edit") and not request.images:
            raise BadRequestError(f"images: task {task!r} needs at least one reference image")
        if request.images and not spec.takes_references(task):
            hint = (
                "; send them to its image-to-image task" if "image-to-image" in spec.tasks else ""
            )
            raise BadRequestError(
                f"images: model {route!r} takes no reference images for {task!r}{hint}"
            )

        job_id = new_prediction_id()
        references = await self.media.store_references(job_id, list(request.images or ()))
        first = (references[0].info.width, references[0].info.height) if references else None
        params = build_params(
            request,
            seed=resolve_seed(request.seed),
            size=output_size(request.aspect_ratio, request.resolution, first),
        )
        try:
            plan, lane = await self.router.plan(spec, params)
            job = repo.new_job(
                job_id=job_id,
                account_id=principal.account_id,
                route=spec.route,
                task=task,
                params=params,
                reference_keys=[r.key for r in references],
                now=self.clock(),
                key_id=principal.key_id,
                price_micros=spec.price_of(params.resolution, params.n),
                plan=plan,
                lane=lane,
            )
            existing = await self.inserter.insert(
                job, key_max_concurrent=principal.limits.max_concurrent, idempotency=key
            )
        except BaseException:
            await self._drop_references(job_id, references)
            raise
        if existing is not None:  # a racing submit with the same key made the job
            await self._drop_references(job_id, references)
            return await self._finish_submit(request, await self.get(principal, existing))
        log.info("prediction submitted", extra={"prediction_id": job_id, "route": route})
        self.signals.work_available()
        return await self._finish_submit(request, job)

    async def _finish_submit(self, request: GenerationRequest, job: Job) -> Job:
        if request.enable_sync_mode:
            job = await self.wait_for(job, self.settings.sync_mode_timeout)
        return job

    async def _drop_references(self, job_id: str, references: Sequence[Any]) -> None:
        for ref in references:
            if ref.key.startswith(f"refs/{job_id}/"):
                await self.media.blobs.delete(ref.key)

    def _remember(self, job: Job) -> Job:
        """Ended jobs never change again, so they can be answered from memory."""
        return self._ended.put(job.id, job) if job.is_terminal else job

    async def get(self, principal: Principal, job_id: str) -> Job:
        job = self._ended.get(job_id)
        if job is None:
            async with self.db.read() as conn:
                job = await repo.get_job(conn, job_id)
            if job is not None:
                self._remember(job)
        # Someone else's job is reported exactly like a missing one, so ids leak nothing.
        if job is None or job.account_id != principal.account_id:
            raise NotFoundError(f"prediction {job_id!r} not found")
        return job

    async def wait_for(self, job: Job, limit_s: float) -> Job:
        """The job once it has ended, or as it stands when ``limit_s`` runs out."""
        # Only the sleep is bounded, never a database read: a cancel in mid-query would
        # tear the connection down instead of returning it to the pool.
        deadline = anyio.current_time() + limit_s
        while not job.is_terminal:
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                break
            await self.signals.wait_job_changed(
                job.id, min(remaining, self.settings.poll_interval_s)
            )
            async with self.db.read() as conn:
                fresh = await repo.get_job(conn, job.id)
            if fresh is not None:
                job = self._remember(fresh)
        return job

    async def wait(self, principal: Principal, job_id: str, limit_s: float) -> Job:
        job = await self.get(principal, job_id)
        return await self.wait_for(job, min(limit_s, self.settings.max_wait_s))

    async def changes(
        self, principal: Principal, job_id: str, after: str | None, keepalive_s: float
    ) -> AsyncIterator[tuple[str, Job | None]]:
        """The job each time its status or step moves on, as (event id, job), until it
        has ended; (``""``, None) after ``keepalive_s`` without a change. ``after`` is the
        last event id a client saw: a reconnecting client gets only what is newer."""
        job = await self.get(principal, job_id)
        seen = _event_key(after)
        quiet_since = anyio.current_time()
        while True:
            key = _job_key(job)
            if seen is None or key > seen:
                seen = key
                quiet_since = anyio.current_time()
                yield f"{key[0]}-{key[1]}", job
            elif anyio.current_time() - quiet_since >= keepalive_s:
                quiet_since = anyio.current_time()
                yield "", None
            if job.is_terminal:
                return
            await self.signals.wait_job_changed(job.id, self.settings.poll_interval_s)
            async with self.db.read() as conn:
                fresh = await repo.get_job(conn, job.id)
            if fresh is not None:
                job = self._remember(fresh)

    async def list_jobs(self, principal: Principal, query: ListQuery) -> tuple[list[Job], int]:
        async with self.db.read() as conn:
            return await repo.list_jobs(
                conn,
                principal.account_id,
                offset=(query.page - 1) * query.page_size,
                limit=query.page_size,
                status=query.status,
                route=query.model,
                created_after=to_store_time(query.created_after),
                created_before=to_store_time(query.created_before),
            )

    async def cancel(self, principal: Principal, job_id: str) -> Job:
        await self.get(principal, job_id)
        async with self.db.write() as conn:
            now = self.clock()
            cancelled = await repo.cancel_job(conn, job_id, CANCELLED_ERROR, now)
            if cancelled:
                await ledger.refund(conn, job_id, now)
                await notify(conn, job_id)
            job = await repo.get_job(conn, job_id)
        assert job is not None
        if not cancelled:
            raise BadRequestError(f"prediction {job_id!r} has already ended ({job.status})")
        log.info("prediction cancelled", extra={"prediction_id": job_id})
        self.signals.job_changed(job_id)
        return job

    async def to_wire(self, job: Job, base_url: str, *, sync_timed_out: bool = False) -> Prediction:
        # An ended job renders the same every time for a given base URL (its links expire
        # at a fixed time), so the rendering is kept; base64 outputs are too big to keep.
        memo_key = (job.id, base_url)
        memoisable = job.is_terminal and not job.params.base64_output
        if memoisable and (cached := self._ended_wire.get(memo_key)) is not None:
            return cached
        prediction = await self._render(job, base_url, sync_timed_out=sync_timed_out)
        return self._ended_wire.put(memo_key, prediction) if memoisable else prediction

    async def _render(self, job: Job, base_url: str, *, sync_timed_out: bool) -> Prediction:
        outputs = await self._output_refs(job, base_url)
        error = job.error
        if sync_timed_out and not job.is_terminal:
            error = SYNC_TIMEOUT_ERROR
        return Prediction(
            id=job.id,
            model=job.route,
            outputs=outputs,
            urls=PredictionUrls(get=f"{base_url}/api/v3/predictions/{job.id}/result"),
            status=job.status.value,
            error=error,
            executionTime=job.execution_ms,
            timings=Timings(inference=job.inference_ms),
            has_nsfw_contents=list(job.nsfw),
            created_at=job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            seed=job.params.seed,
            progress=(
                JobProgress(step=job.progress_step, total=job.progress_total)
                if job.status == JobStatus.PROCESSING and job.progress_total
                else None
            ),
        )

    async def _output_refs(self, job: Job, base_url: str) -> list[str]:
        if job.status != JobStatus.COMPLETED:
            return []
        if job.params.base64_output:
            mime = CONTENT_TYPE_BY_EXTENSION[job.params.output_format]
            return [
                f"data:{mime};base64,{base64.b64encode(data).decode()}"
                for data in await self._read_all(job.outputs)
            ]
        # Links expire a fixed time after the job finished, so every read of the same job
        # returns the same URLs (cacheable, comparable) rather than ever-new ones.
        finished = job.finished_at or job.created_at
        expires = self.media.expiry_from(math.ceil(epoch(finished)))
        return [self.media.file_url(base_url, key, expires) for key in job.outputs]

    async def _read_all(self, keys: Sequence[str]) -> list[bytes]:
        return [await self.media.blobs.get(key) for key in keys]

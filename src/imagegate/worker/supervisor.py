"""The worker: each slot claims a job, keeps its lease alive (storing the model's step with
the heartbeat), hands the job to the batcher in front of the worker's one model, checks and
encodes its images off the event loop, and finishes it with a compare-and-set.

A job whose worker dies (the process is killed) keeps its lease until it lapses; then any
worker claims it again, so an accepted job is never lost.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
from PIL import Image

from imagegate.backends.base import GenerationInput, ProgressCallback
from imagegate.backends.upstream.base import UpstreamError
from imagegate.domain.jobs import Job
from imagegate.domain.registry import RouteSpec
from imagegate.errors import ContentBlockedError
from imagegate.services.container import Services
from imagegate.worker.batcher import Batcher, Models
from imagegate.worker.encode import EXTENSIONS, decode, encode
from imagegate.worker.in_thread import InThreadModels
from imagegate.worker.model_process import ModelProcess
from imagegate.worker.output_check import OutputCheck
from imagegate.worker.protocol import JobCancelled
from imagegate.worker.upstream import LostSubmit, UpstreamRunner

log = logging.getLogger("imagegate.worker")


# How often the upstream claimer looks for jobs of "spill" routes stuck in the local queue.
_SWEEP_S = 1.0


class OutputBlocked(Exception):
    """The output image check found an unsafe image on a route that blocks them."""


def _job_log(job: Job) -> logging.LoggerAdapter[logging.Logger]:
    return logging.LoggerAdapter(log, {"prediction_id": job.id, "route": job.route})


class _Progress:
    """The model's latest step for one job. The model's thread writes it, the job's
    lease keeper reads it and stores it with the next heartbeat."""

    def __init__(self) -> None:
        self.latest: tuple[int, int] | None = None
        self.stored: tuple[int, int] | None = None

    def __call__(self, step: int, total: int) -> None:
        self.latest = (step, total)

    def unstored(self) -> tuple[int, int] | None:
        latest = self.latest
        return latest if latest != self.stored else None


class Worker:
    def __init__(self, services: Services, *, concurrency: int | None = None) -> None:
        self.services = services
        settings = services.settings
        self.concurrency = concurrency or settings.worker_concurrency
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.output_check = OutputCheck(settings.image_checker)
        budget = (
            None if settings.model_memory_gb is None else int(settings.model_memory_gb * 1024**3)
        )
        # One model process per worker: it holds the weights once, and its batcher feeds
        # it the jobs that all slots have in hand.
        self.models: Models
        if settings.worker_isolation == "process":
            self.models = ModelProcess(budget, reuse_memory=settings.model_memory_reuse)
        else:
            self.models = InThreadModels(budget)
        self.batcher = Batcher(self.models, settings.batch_window_ms / 1000)
        # Upstream jobs wait on a provider, not on the model: their own slots, many more.
        self.upstream = (
            UpstreamRunner(services.execution, self.id) if services.registry.has_upstream else None
        )
        self._stopping = False
        self.stopped = anyio.Event()

    async def run(self) -> None:
        warm = [spec for spec in self.services.registry.routes.values() if spec.warm]
        try:
            async with anyio.create_task_group() as model_side:
                model_side.start_soon(self.batcher.run, warm)
                try:
                    async with anyio.create_task_group() as slots:
                        for _ in range(self.concurrency):
                            slots.start_soon(self._claim_and_run)
                        if self.upstream is not None:
                            slots.start_soon(self._claim_upstream)
                finally:
                    model_side.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.models.close)
                if self.upstream is not None:
                    await self.upstream.aclose()
            self.stopped.set()

    def stop(self) -> None:
        """Claim nothing more; jobs in hand run to their end."""
        self._stopping = True
        self.services.signals.work_available()

    async def _claim_and_run(self) -> None:
        execution = self.services.execution
        while not self._stopping:
            try:
                # Shielded: a cancel in the middle of a transaction would leave the
                # connection to be torn down instead of rolled back or committed.
                with anyio.CancelScope(shield=True):
                    job = await execution.claim(self.id)
            except Exception:
                # A database hiccup must not kill the worker; the next round retries.
                log.exception("claim failed")
                job = None
            if job is None:
                await self.services.signals.wait_for_work(self.services.settings.poll_interval_s)
                continue
            await self.run_job(job)

    async def _claim_upstream(self) -> None:
        """One claimer for the upstream lane, starting each job it claims while fewer than
        ``upstream_concurrency`` are in flight (rather than that many idle claim loops)."""
        execution = self.services.execution
        room = anyio.Semaphore(self.services.settings.upstream_concurrency)
        spill = [s for s in self.services.registry.routes.values() if s.strategy == "spill"]
        swept = 0.0
        async with anyio.create_task_group() as jobs:
            while not self._stopping:
                if spill and time.monotonic() - swept >= _SWEEP_S:
                    swept = time.monotonic()
                    try:
                        with anyio.CancelScope(shield=True):
                            await execution.spill_stale(spill)
                    except Exception:
                        log.exception("moving long-waiting jobs failed")
                await room.acquire()
                try:
                    with anyio.CancelScope(shield=True):
                        job = await execution.claim(self.id, "upstream")
                except Exception:
                    log.exception("claim failed")
                    job = None
                if job is None:
                    room.release()
                    await self.services.signals.wait_for_work(
                        self.services.settings.poll_interval_s
                    )
                    continue
                jobs.start_soon(self._run_and_release, job, room)

    async def _run_and_release(self, job: Job, room: anyio.Semaphore) -> None:
        try:
            await self.run_job(job)
        finally:
            room.release()

    async def _keep_lease(self, job: Job, cancelled: anyio.Event, progress: _Progress) -> None:
        settings = self.services.settings
        interval = settings.lease_s / 3
        last_beat = time.monotonic()
        while True:
            # A cancel in this process wakes us at once; one made elsewhere is seen at the
            # next heartbeat, whose compare-and-set fails once the job is no longer ours.
            changed = await self.services.signals.wait_job_changed(
                job.id, min(interval, settings.progress_interval_s)
            )
            news = progress.unstored()
            if not changed and news is None and time.monotonic() - last_beat < interval:
                continue
            try:
                with anyio.CancelScope(shield=True):
                    held = await self.services.execution.heartbeat(job, self.id, news)
            except Exception:
                _job_log(job).exception("heartbeat failed")
                continue
            last_beat = time.monotonic()
            progress.stored = news or progress.stored
            if not held:
                cancelled.set()
                return

    async def run_job(self, job: Job) -> None:
        jlog = _job_log(job)
        jlog.info("job started (attempt %d)", job.attempts)
        started = time.perf_counter()
        cancelled = anyio.Event()
        progress = _Progress()
        async with anyio.create_task_group() as group:
            group.start_soon(self._keep_lease, job, cancelled, progress)
            try:
                await self._execute(job, progress, started, cancelled)
            except JobCancelled:
                jlog.info("job stopped: cancelled or no longer held")
            except OutputBlocked:
                jlog.warning("job failed: the output image check found an unsafe image")
                await self._record_failure(job, ContentBlockedError.default_message, started)
            except UpstreamError as exc:
                await self._upstream_failed(job, exc, started)
            except LostSubmit as exc:
                jlog.error("job failed: its submit's outcome is unknown: %s", exc)
                await self._record_failure(
                    job,
                    f"the provider may have run this job, so it was not sent again: {exc}",
                    started,
                )
            except Exception as exc:
                jlog.exception("job failed")
                await self._record_failure(job, f"generation failed: {exc}", started)
            finally:
                group.cancel_scope.cancel()

    async def _upstream_failed(self, job: Job, exc: UpstreamError, started: float) -> None:
        jlog = _job_log(job)
        if exc.kind in ("transient", "failed", "rate") and job.next_target is not None:
            spec = self.services.registry.routes[job.route]
            with anyio.CancelScope(shield=True):
                if await self.services.execution.hand_over(job, self.id, spec.lanes, exc.message):
                    return
        if exc.kind == "content":
            jlog.warning("job failed: the provider's content policy: %s", exc.message)
            await self._record_failure(job, ContentBlockedError.default_message, started)
            return
        jlog.error("job failed upstream: %s", exc.message)
        await self._record_failure(job, f"generation failed: {exc.message}", started)

    async def _record_failure(self, job: Job, error: str, started: float) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await self.services.execution.fail(
                    job, self.id, error, execution_ms=_ms_since(started)
                )
        except Exception:
            # The database is away: the job keeps its lease, which lapses, and the job
            # runs again; the worker itself must live on to take the next one.
            _job_log(job).exception("could not record the failure")

    async def _execute(
        self, job: Job, progress: ProgressCallback, started: float, cancelled: anyio.Event
    ) -> None:
        spec = self.services.registry.lookup(job.route, job.task)
        targets = spec.all_targets
        if job.target >= len(targets):
            raise RuntimeError(f"route {job.route!r} has no target {job.target} any more")
        target = targets[job.target]
        params = job.params
        if target.upstream is not None:
            assert self.upstream is not None, "upstream jobs are claimed by the upstream pool"
            result = await self.upstream.run(job, target, cancelled)
            images, provider_nsfw, inference_ms = result.images, result.nsfw, result.inference_ms
        else:
            images, inference_ms = await self._generate(job, spec, progress, cancelled)
            provider_nsfw = [False] * len(images)
        generated = time.perf_counter()
        if len(images) != params.n or any(
            image.size != (params.width, params.height) for image in images
        ):
            raise RuntimeError(
                f"backend returned {[image.size for image in images]}, "
                f"expected {params.n} x {params.width}x{params.height}"
            )
        # The check and the encoding run side by side: both must end before anything is
        # stored, and on a one-image job nothing else would use the cores meanwhile.
        checked: list[bool]
        files: list[bytes]
        checked, files = await _together(
            lambda: self.output_check.flags(images),
            lambda: _encode_all(images, params.output_format),
        )
        checked_at = time.perf_counter()
        nsfw = [a or b for a, b in zip(checked, provider_nsfw, strict=True)]
        if any(nsfw) and spec.safety == "block":
            raise OutputBlocked  # never stored; failing it refunds it
        with anyio.CancelScope(shield=True):  # see _claim_and_run: never cut a transaction short
            done = await self.services.execution.complete(
                job,
                self.id,
                files,
                extension=EXTENSIONS[params.output_format],
                nsfw=nsfw,
                inference_ms=inference_ms,
                execution_ms=_ms_since(started),
                ran_on=target.name,
                cost_micros=target.cost_micros * params.n,
            )
        if done:
            jlog = _job_log(job)
            jlog.info("job completed in %d ms on %s", _ms_since(started), target.name)
            jlog.debug(
                "job's time: %d ms to the images (the model's %d), %d ms checking and "
                "encoding, %d ms storing",
                round((generated - started) * 1000),
                inference_ms,
                round((checked_at - generated) * 1000),
                _ms_since(checked_at),
            )

    async def _generate(
        self, job: Job, spec: RouteSpec, progress: ProgressCallback, cancelled: anyio.Event
    ) -> tuple[list[Image.Image], int]:
        raw_refs = await self.services.execution.references(job)
        references = [await anyio.to_thread.run_sync(decode, data) for data in raw_refs]
        params = job.params
        request = GenerationInput(
            task=job.task,
            prompt=params.prompt,
            n=params.n,
            width=params.width,
            height=params.height,
            seed=params.seed,
            negative_prompt=params.negative_prompt,
            references=references,
        )
        return await self.batcher.generate(spec, request, progress, cancelled)


async def _encode_all(images: list[Image.Image], output_format: str) -> list[bytes]:
    """All of a job's images at once, each in a worker thread (the PNG writer and Pillow let
    go of the GIL while they compress), never on the event loop or in the model's way."""
    return await _together(
        *(partial(anyio.to_thread.run_sync, encode, image, output_format) for image in images)
    )


async def _together(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Each call's result, the calls run concurrently. A failure is raised as itself, not
    inside an exception group, so the job's error message names it."""
    results: list[Any] = [None] * len(calls)
    errors: list[Exception] = []

    async def run(index: int, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            results[index] = await call()
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        for index, call in enumerate(calls):
            group.start_soon(run, index, call)
    if errors:
        raise errors[0]
    return results


def _ms_since(start: float) -> int:
    return round((time.perf_counter() - start) * 1000)

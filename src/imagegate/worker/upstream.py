"""The upstream pool's side of a job: send it to the provider once, wait for it, bring its
images home.

Waiting holds no model slot: upstream jobs are claimed by their own slots (the "upstream"
lane) and spend their time in ``anyio.sleep`` between polls. Each step is stored before it
is acted on, so a worker that dies at any point is replaced by one that picks up the same
job at the provider:

* "submitting" (with the key's fingerprint) is stored before the submit is sent. A worker
  that finds it, with no provider id, does not know whether the provider has the job: it
  sends it again only where the provider recognises the repeat (the same Idempotency-Key,
  ``finds_lost_submits``), and otherwise fails the job saying the provider may have run it.
* "submitted" with the provider's id once the provider answered: every later attempt only
  reads that job.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass

import anyio
import httpx
from PIL import Image, ImageOps

from imagegate.backends.upstream.adapters import adapter_for
from imagegate.backends.upstream.base import (
    Adapter,
    Finished,
    Pending,
    Reference,
    Submitted,
    UpstreamError,
    UpstreamRequest,
)
from imagegate.domain.images import content_type_of, inspect_image
from imagegate.domain.jobs import Job
from imagegate.domain.providers import UpstreamOptions
from imagegate.domain.registry import Target
from imagegate.errors import ImagegateError
from imagegate.services.execution import ExecutionService
from imagegate.worker.circuit import CircuitBreaker
from imagegate.worker.encode import decode
from imagegate.worker.key_pool import KeyPool, NoUsableKey, fingerprint
from imagegate.worker.protocol import JobCancelled

log = logging.getLogger("imagegate.upstream")

SUBMITTING = "submitting"
SUBMITTED = "submitted"
# A 429 is tried again this many times (after its Retry-After) before the job moves on.
_RATE_RETRIES = 3
# A submit whose answer was lost is sent again (to a provider that recognises the repeat)
# at most this many times.
_RESENDS = 3
_DOWNLOAD_TRIES = 3


class LostSubmit(Exception):
    """The provider may have the job, and cannot be asked: it is not sent again."""


@dataclass(frozen=True)
class UpstreamResult:
    images: list[Image.Image]
    nsfw: list[bool]
    inference_ms: int


class UpstreamRunner:
    def __init__(self, execution: ExecutionService, worker_id: str) -> None:
        self.execution = execution
        self.worker_id = worker_id
        self.http = httpx.AsyncClient(
            follow_redirects=True,
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        self._pools: dict[tuple[str, str], KeyPool] = {}
        self._breakers: dict[tuple[str, int], CircuitBreaker] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    def pool(self, options: UpstreamOptions) -> KeyPool:
        # Routes that name the same provider account (base URL and key variable) share its
        # keys and their caps.
        ident = (options.base_url, options.api_keys_env)
        if ident not in self._pools:
            self._pools[ident] = KeyPool(options.api_keys_env, options.max_concurrent_per_key)
        return self._pools[ident]

    def breaker(self, route: str, target: Target) -> CircuitBreaker:
        ident = (route, target.index)
        if ident not in self._breakers:
            assert target.upstream is not None
            self._breakers[ident] = CircuitBreaker(
                route,
                target.name,
                target.upstream.circuit_failures,
                target.upstream.circuit_cooldown_s,
            )
        return self._breakers[ident]

    async def run(self, job: Job, target: Target, cancelled: anyio.Event) -> UpstreamResult:
        options = target.upstream
        assert options is not None
        adapter = adapter_for(options, self.http)
        pool = self.pool(options)
        started = time.perf_counter()
        if job.upstream_state is not None:
            key = pool.by_fingerprint(job.upstream_key)
            if key is None:
                raise LostSubmit(
                    f"the key this job was sent with ({job.upstream_key}) is no longer in "
                    f"${options.api_keys_env}, so its result cannot be read"
                )
            pool.hold(key)
            try:
                upstream_id = job.upstream_id
                if job.upstream_state == SUBMITTING or upstream_id is None:
                    log.warning(
                        "resuming a submit whose answer was lost", extra=_extra(job, target)
                    )
                    outcome = await self._resend(job, adapter, options, key)
                    if isinstance(outcome, Finished):
                        return await self._bring_home(job, outcome, started)
                    upstream_id = outcome.upstream_id
                    await self._record(job, SUBMITTED, key, upstream_id)
                else:
                    log.info("resuming upstream job %s", upstream_id, extra=_extra(job, target))
                finished = await self._wait(job, adapter, options, key, upstream_id, cancelled)
            finally:
                pool.release(key)
            return await self._bring_home(job, finished, started)
        return await self._submit_and_wait(job, target, adapter, pool, cancelled, started)

    async def _submit_and_wait(
        self,
        job: Job,
        target: Target,
        adapter: Adapter,
        pool: KeyPool,
        cancelled: anyio.Event,
        started: float,
    ) -> UpstreamResult:
        options = target.upstream
        assert options is not None
        breaker = self.breaker(job.route, target)
        request = await self._request(job)
        while True:
            if not breaker.allows():
                raise UpstreamError(
                    "transient", f"{target.name} kept failing; it gets no new jobs for now"
                )
            try:
                key = await pool.acquire()
            except NoUsableKey as exc:
                raise UpstreamError("transient", str(exc)) from exc
            try:
                await self._record(job, SUBMITTING, key)
                try:
                    outcome = await self._send(adapter, key, request)
                except UpstreamError as exc:
                    if exc.kind != "unknown":
                        # The provider did not take it: say so before anything else, so
                        # that a crash now is not mistaken for a lost answer later.
                        await self._record(job, None)
                        raise
                    if not options.finds_lost_submits:
                        raise LostSubmit(exc.message) from exc
                    outcome = await self._resend(job, adapter, options, key)
                breaker.succeeded()
                if isinstance(outcome, Finished):
                    return await self._bring_home(job, outcome, started)
                await self._record(job, SUBMITTED, key, outcome.upstream_id)
                log.info(
                    "sent to %s as %s", target.name, outcome.upstream_id, extra=_extra(job, target)
                )
                finished = await self._wait(
                    job, adapter, options, key, outcome.upstream_id, cancelled
                )
                return await self._bring_home(job, finished, started)
            except UpstreamError as exc:
                if exc.kind in ("transient", "failed"):
                    breaker.failed()
                if exc.kind == "key":
                    pool.disable(key, exc.message)
                    continue  # the provider refused the key, not the job: the next key
                raise
            finally:
                pool.release(key)

    async def _send(
        self, adapter: Adapter, key: str, request: UpstreamRequest
    ) -> Submitted | Finished:
        for attempt in range(_RATE_RETRIES + 1):
            try:
                return await adapter.submit(key, request)
            except UpstreamError as exc:
                if exc.kind != "rate" or attempt == _RATE_RETRIES:
                    if exc.kind == "rate":
                        raise UpstreamError("transient", exc.message) from exc
                    raise
                await anyio.sleep(exc.retry_after_s or 2.0**attempt)
        raise AssertionError("unreachable")

    async def _resend(
        self, job: Job, adapter: Adapter, options: UpstreamOptions, key: str
    ) -> Submitted | Finished:
        """Send a submit whose answer was lost again, to a provider that answers a repeat
        with the job it already made."""
        if not options.finds_lost_submits:
            raise LostSubmit(
                f"{options.provider} got the submit but its answer was lost, and it cannot "
                "be asked which job it made"
            )
        request = await self._request(job)
        last = ""
        for attempt in range(_RESENDS):
            try:
                return await self._send(adapter, key, request)
            except UpstreamError as exc:
                if exc.kind not in ("unknown", "transient"):
                    raise
                last = exc.message
                await anyio.sleep(min(2.0**attempt, 10.0))
        raise LostSubmit(f"{options.provider} kept losing its answer to the submit: {last}")

    async def _wait(
        self,
        job: Job,
        adapter: Adapter,
        options: UpstreamOptions,
        key: str,
        upstream_id: str,
        cancelled: anyio.Event,
    ) -> Finished:
        deadline = time.monotonic() + options.max_wait_s
        delay = options.poll_interval_s
        while True:
            pause: float = delay
            try:
                outcome = await adapter.poll(key, upstream_id)
            except UpstreamError as exc:
                if exc.kind in ("failed", "content", "rejected"):
                    raise
                # The job is still at the provider; only this read failed.
                log.warning("reading the upstream job failed: %s", exc.message)
                outcome = Pending(exc.retry_after_s)
            if isinstance(outcome, Finished):
                return outcome
            if outcome.retry_after_s is not None:
                pause = outcome.retry_after_s
            if time.monotonic() >= deadline:
                await self._give_up(adapter, key, upstream_id, options)
            await self._pause(job, cancelled, pause)
            if cancelled.is_set():
                await self._stop_upstream(job, adapter, key, upstream_id)
                raise JobCancelled()
            delay = min(delay * 1.5, options.max_poll_interval_s)

    async def _pause(self, job: Job, cancelled: anyio.Event, seconds: float) -> None:
        """Sleep until the next poll, or less: a cancel, or the provider's webhook (which
        marks the job changed), ends it early."""

        async def watch_job() -> None:
            await self.execution.signals.wait_job_changed(job.id, seconds)
            group.cancel_scope.cancel()

        with anyio.move_on_after(seconds):
            async with anyio.create_task_group() as group:
                group.start_soon(watch_job)
                await cancelled.wait()
                group.cancel_scope.cancel()

    async def _give_up(
        self, adapter: Adapter, key: str, upstream_id: str, options: UpstreamOptions
    ) -> None:
        # The last poll (just before) said it is still running: ask the provider to stop
        # it, so that it neither renders nor bills on after the customer is refunded.
        try:
            await adapter.cancel(key, upstream_id)
        except UpstreamError as exc:
            log.warning("could not cancel upstream job %s: %s", upstream_id, exc.message)
        raise UpstreamError(
            "rejected",
            f"{options.provider} had not finished the job after {options.max_wait_s:.0f} s; "
            "it was asked to cancel it",
        )

    async def _stop_upstream(self, job: Job, adapter: Adapter, key: str, upstream_id: str) -> None:
        # Only a customer's cancel stops the provider's job: a lease lost to another
        # worker means that worker now waits for the same upstream job.
        current = await self.execution.current(job.id)
        if current is None or not current.is_terminal:
            return
        try:
            await adapter.cancel(key, upstream_id)
        except UpstreamError as exc:
            log.warning("could not cancel upstream job %s: %s", upstream_id, exc.message)

    async def _record(
        self, job: Job, state: str | None, key: str | None = None, upstream_id: str | None = None
    ) -> None:
        with anyio.CancelScope(shield=True):
            held = await self.execution.record_upstream(
                job,
                self.worker_id,
                state,
                key=None if key is None else fingerprint(key),
                upstream_id=upstream_id,
            )
        if not held:
            raise JobCancelled()

    async def _request(self, job: Job) -> UpstreamRequest:
        params = job.params
        references = [
            Reference(data, content_type_of(data)) for data in await self.execution.references(job)
        ]
        return UpstreamRequest(
            task=job.task,
            prompt=params.prompt,
            n=params.n,
            width=params.width,
            height=params.height,
            aspect_ratio=params.aspect_ratio,
            resolution=params.resolution,
            seed=params.seed,
            output_format=params.output_format,
            negative_prompt=params.negative_prompt,
            references=references,
            client_ref=f"{job.id}-{job.hop}",
            webhook_url=self.execution.upstream_webhook_url(job),
        )

    async def _bring_home(self, job: Job, finished: Finished, started: float) -> UpstreamResult:
        """The provider's images as the contract's: exactly ``n``, at exactly its size."""
        params = job.params
        if len(finished.outputs) < params.n:
            raise UpstreamError(
                "failed",
                f"the provider returned {len(finished.outputs)} images, {params.n} were asked",
            )
        images = []
        for output in finished.outputs[: params.n]:
            data = await self._download(output)
            try:
                # Bytes from outside: the same checks as an upload (format, pixel cap).
                inspect_image(data, self.execution.settings.max_image_pixels)
            except ImagegateError as exc:
                raise UpstreamError("failed", f"the provider's image: {exc.message}") from exc
            image = await anyio.to_thread.run_sync(decode, data)
            if image.size != (params.width, params.height):
                image = ImageOps.fit(
                    image.convert("RGB"), (params.width, params.height), Image.Resampling.LANCZOS
                )
            images.append(image)
        nsfw = [bool(flag) for flag in finished.nsfw[: params.n]]
        nsfw += [False] * (params.n - len(nsfw))
        return UpstreamResult(images, nsfw, round((time.perf_counter() - started) * 1000))

    async def _download(self, output: str | bytes) -> bytes:
        if isinstance(output, bytes):
            return output
        if output.startswith("data:"):
            return base64.b64decode(output.partition(",")[2])
        last: Exception | None = None
        for attempt in range(_DOWNLOAD_TRIES):
            try:
                response = await self.http.get(output)
                response.raise_for_status()
                return response.content
            except httpx.HTTPError as exc:
                last = exc
                await anyio.sleep(0.5 * 2**attempt)
        raise UpstreamError("failed", f"the provider's image could not be downloaded: {last}")


def _extra(job: Job, target: Target) -> dict[str, str]:
    return {"prediction_id": job.id, "route": job.route, "target": target.name}

"""One worker's queue in front of its model: jobs in hand wait here, and compatible ones
(same route, task and size) are merged into one model call of at most ``max_batch``
images.

The model runs one batch at a time. While it does, jobs that arrive pile up and leave
together as the next batch. A batch whose model was busy with company last time waits
``batch_window`` for more before it starts; a lone job on a quiet server starts at once,
so batching costs nothing when there is nothing to batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from PIL import Image

from imagegate.backends.base import GenerationInput, ProgressCallback
from imagegate.domain.registry import RouteSpec
from imagegate.worker.protocol import JobCancelled

log = logging.getLogger("imagegate.worker")

# An idle spell this many gathering windows long ends a rush.
_QUIET = 10


class Models(Protocol):
    """Where batches run: a model process, or a thread of this one."""

    async def load(self, spec: RouteSpec) -> None: ...

    async def generate(
        self,
        spec: RouteSpec,
        requests: Sequence[GenerationInput],
        progress: ProgressCallback,
        stop: anyio.Event,
    ) -> tuple[list[list[Image.Image]], int]:
        """One list of images per request and the model's time in ms; raises JobCancelled
        soon after ``stop`` is set (at the model's next step)."""
        ...

    def close(self) -> None: ...


@dataclass(eq=False)
class _Waiting:
    spec: RouteSpec
    request: GenerationInput
    progress: ProgressCallback
    cancelled: anyio.Event
    done: anyio.Event = field(default_factory=anyio.Event)
    images: list[Image.Image] = field(default_factory=list)
    inference_ms: int = 0
    error: Exception | None = None
    running: _Running | None = None  # the batch it is in, once that is in the model

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.spec.route, self.request.task, self.request.width, self.request.height)


@dataclass(eq=False)
class _Running:
    """A batch in the model, which stops once every one of its jobs is cancelled."""

    items: list[_Waiting]
    stop: anyio.Event = field(default_factory=anyio.Event)

    def job_left(self) -> None:
        if all(item.cancelled.is_set() for item in self.items):
            self.stop.set()


class Batcher:
    def __init__(self, models: Models, window_s: float) -> None:
        self.models = models
        self.window_s = window_s
        self._waiting: list[_Waiting] = []
        self._arrived = anyio.Event()
        # Whether the last batch left with other jobs waiting or in it: only then is a
        # short wait for company likely to pay.
        self._crowded = False

    async def generate(
        self,
        spec: RouteSpec,
        request: GenerationInput,
        progress: ProgressCallback,
        cancelled: anyio.Event,
    ) -> tuple[list[Image.Image], int]:
        """This job's images and the model time of its batch. Raises JobCancelled as soon
        as ``cancelled`` is set, even while the rest of its batch runs on."""
        item = _Waiting(spec, request, progress, cancelled)
        self._waiting.append(item)
        self._arrived.set()
        try:
            async with anyio.create_task_group() as group:

                async def leave_on_cancel() -> None:
                    await cancelled.wait()
                    if item.running is not None:
                        item.running.job_left()
                    group.cancel_scope.cancel()

                group.start_soon(leave_on_cancel)
                await item.done.wait()
                group.cancel_scope.cancel()
        finally:
            # Whether the job was cancelled or its caller was, it must not reach the model.
            if item in self._waiting:
                self._waiting.remove(item)
        if not item.done.is_set():
            raise JobCancelled()
        if item.error is not None:
            raise item.error
        return item.images, item.inference_ms

    async def run(self, warm: Sequence[RouteSpec] = ()) -> None:
        for spec in warm:
            try:
                await self.models.load(spec)
            except Exception:
                log.exception("warming model %s failed; its first job will try again", spec.route)
        while True:
            idle_since = time.monotonic()
            while not self._waiting:
                await self._arrived.wait()
                self._arrived = anyio.Event()
            if time.monotonic() - idle_since > _QUIET * self.window_s:
                self._crowded = False  # the rush is over: a lone job starts at once again
            batch = self._take()
            if not batch:
                continue
            await self._run_batch(batch)

    def _take(self) -> list[_Waiting]:
        self._waiting = [item for item in self._waiting if not item.cancelled.is_set()]
        if not self._waiting:
            return []
        first = self._waiting[0]
        batch, images = [first], first.request.n
        for item in self._waiting[1:]:
            if item.key == first.key and images + item.request.n <= first.spec.max_batch:
                batch.append(item)
                images += item.request.n
        return batch

    async def _run_batch(self, batch: list[_Waiting]) -> None:
        spec = batch[0].spec
        room = spec.max_batch - sum(item.request.n for item in batch)
        if room > 0 and self._crowded and self.window_s > 0:
            await anyio.sleep(self.window_s)
            batch = self._take()
            if not batch:
                return
            spec = batch[0].spec  # the job that opened the window may have left
        for item in batch:
            self._waiting.remove(item)
        self._crowded = len(batch) > 1 or bool(self._waiting)
        log.debug(
            "running a batch of %d job(s), %d image(s) on %s",
            len(batch),
            sum(item.request.n for item in batch),
            spec.route,
        )

        def progress(step: int, total: int) -> None:
            for item in batch:
                item.progress(step, total)

        running = _Running(batch)
        for item in batch:
            item.running = running
        try:
            images, inference_ms = await self.models.generate(
                spec, [item.request for item in batch], progress, running.stop
            )
            if len(images) != len(batch):
                raise RuntimeError(
                    f"backend returned images for {len(images)} requests, expected {len(batch)}"
                )
        except Exception as exc:
            for item in batch:
                item.error = exc
                item.done.set()
            return
        for item, own in zip(batch, images, strict=True):
            item.images, item.inference_ms = own, inference_ms
            item.done.set()

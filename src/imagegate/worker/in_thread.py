"""Models run in a thread of the worker's own process (``IMAGEGATE_WORKER_ISOLATION=thread``):
no process to start, so tests and small setups are quick; a crash in a backend takes the
worker with it."""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio
from PIL import Image

from imagegate.backends.base import GenerationInput, ProgressCallback
from imagegate.domain.registry import RouteSpec
from imagegate.worker.model_cache import ModelCache
from imagegate.worker.protocol import JobCancelled


class InThreadModels:
    def __init__(self, budget_bytes: int | None = None) -> None:
        self.cache = ModelCache(budget_bytes)

    async def load(self, spec: RouteSpec) -> None:
        await anyio.to_thread.run_sync(self.cache.get, spec)

    async def generate(
        self,
        spec: RouteSpec,
        requests: Sequence[GenerationInput],
        progress: ProgressCallback,
        stop: anyio.Event,
    ) -> tuple[list[list[Image.Image]], int]:
        def step(done: int, total: int) -> None:
            # On the event loop, as in the model process's case: callers' progress
            # callbacks need not be thread-safe.
            anyio.from_thread.run_sync(progress, done, total)
            if stop.is_set():
                raise JobCancelled()

        started = time.perf_counter()
        images = await anyio.to_thread.run_sync(self.cache.generate, spec, requests, step)
        return images, round((time.perf_counter() - started) * 1000)

    def close(self) -> None:
        self.cache.clear()

"""The loaded models of one worker, least recently used first, under a memory budget.

Loading is lazy (a model's first job loads it, with a log line) unless its entry asks to
be warmed at start. Once the loaded models hold more than the budget, the least recently
used ones are closed and dropped until they fit again: the one just used always stays.
"""

from __future__ import annotations

import gc
import importlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from PIL import Image

from imagegate.backends.base import BackendOutOfMemory, GenerationInput, ProgressCallback
from imagegate.domain.registry import RouteSpec
from imagegate.worker import allocator

log = logging.getLogger("imagegate.models")

_GB = 1024**3


def load_backend(spec: RouteSpec) -> Any:
    module_name, _, class_name = spec.backend_path.partition(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(spec)


def _size(nbytes: int) -> str:
    return f"{nbytes / _GB:.2f} GB" if nbytes >= _GB / 100 else f"{nbytes / 1024**2:.1f} MB"


class ModelCache:
    def __init__(self, budget_bytes: int | None = None) -> None:
        self.budget_bytes = budget_bytes
        self._loaded: OrderedDict[str, Any] = OrderedDict()

    @property
    def routes(self) -> list[str]:
        """Loaded routes, least recently used first."""
        return list(self._loaded)

    def held_bytes(self) -> int:
        return sum(backend.memory_bytes() for backend in self._loaded.values())

    def get(self, spec: RouteSpec) -> Any:
        backend = self._loaded.get(spec.route)
        if backend is not None:
            self._loaded.move_to_end(spec.route)
            return backend
        log.info("loading model %s (%s backend)", spec.route, spec.backend)
        started = time.perf_counter()
        try:
            backend = load_backend(spec)
        except BackendOutOfMemory:
            # Other models may be what fills the device: drop them and try once more.
            self.clear()
            backend = load_backend(spec)
        self._loaded[spec.route] = backend
        # Loading leaves freed memory behind (weights read on the CPU, then moved to a GPU),
        # which a process that keeps freed memory for reuse (allocator.py) would hold on to.
        allocator.release()
        log.info(
            "loaded model %s in %.1f s, holding %s",
            spec.route,
            time.perf_counter() - started,
            _size(backend.memory_bytes()),
        )
        self._fit()
        return backend

    def generate(
        self, spec: RouteSpec, requests: Sequence[GenerationInput], progress: ProgressCallback
    ) -> list[list[Image.Image]]:
        backend = self.get(spec)
        try:
            images: list[list[Image.Image]] = backend.generate(requests, progress)
        except BackendOutOfMemory:
            self.clear(keep=spec.route)
            raise
        return images

    def _fit(self) -> None:
        if self.budget_bytes is None:
            return
        while len(self._loaded) > 1 and self.held_bytes() > self.budget_bytes:
            route = next(iter(self._loaded))
            log.info(
                "unloading model %s: loaded models hold more than the %s budget",
                route,
                _size(self.budget_bytes),
            )
            self.evict(route)

    def evict(self, route: str) -> None:
        backend = self._loaded.pop(route, None)
        if backend is None:
            return
        backend.close()
        del backend
        # Pipelines hold reference cycles (modules, hooks); without a collection their
        # tensors would outlive the eviction that was meant to free them.
        gc.collect()
        allocator.release()  # as after loading

    def clear(self, keep: str | None = None) -> None:
        for route in [r for r in self._loaded if r != keep]:
            self.evict(route)

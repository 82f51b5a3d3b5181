"""Backends that misbehave on purpose, loaded by the worker through the registry's
``package.module:Class`` path exactly as a user's own backend would be."""

from __future__ import annotations

import os
import signal

from PIL import Image

from imagegate.backends.base import GenerationInput, ProgressCallback
from imagegate.domain.registry import RouteSpec


class ExplodingBackend:
    def __init__(self, spec: RouteSpec) -> None:
        self.spec = spec

    def generate(self, request: GenerationInput, progress: ProgressCallback) -> list[Image.Image]:
        if "explode" in request.prompt:
            raise RuntimeError("CUDA out of memory (simulated)")
        progress(1, 1)
        return [Image.new("RGB", (request.width, request.height)) for _ in range(request.n)]


class WrongSizeBackend:
    def __init__(self, spec: RouteSpec) -> None:
        self.spec = spec

    def generate(self, request: GenerationInput, progress: ProgressCallback) -> list[Image.Image]:
        return [Image.new("RGB", (64, 64))]


class DyingBackend:
    """Kills its own process, as an out-of-memory killer or a segfault would."""

    def __init__(self, spec: RouteSpec) -> None:
        self.spec = spec

    def generate(self, request: GenerationInput, progress: ProgressCallback) -> list[Image.Image]:
        if "die" in request.prompt:
            os.kill(os.getpid(), signal.SIGKILL)
        if "oserror" in request.prompt:
            raise FileNotFoundError("model.safetensors is missing")
        progress(1, 1)
        return [Image.new("RGB", (request.width, request.height)) for _ in range(request.n)]

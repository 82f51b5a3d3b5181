"""Backends that misbehave on purpose, loaded by the worker through the registry's
``package.module:Class`` path exactly as a user's own backend would be."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from PIL import Image

from imagegate.backends.base import GenerationInput, ProgressCallback
from imagegate.domain.registry import RouteSpec


def _blank(request: GenerationInput) -> list[Image.Image]:
    return [Image.new("RGB", (request.width, request.height)) for _ in range(request.n)]


class _Quiet:
    def __init__(self, spec: RouteSpec) -> None:
        self.spec = spec

    def memory_bytes(self) -> int:
        return 0

    def close(self) -> None:
        pass


class ExplodingBackend(_Quiet):
    def generate(
        self, requests: Sequence[GenerationInput], progress: ProgressCallback
    ) -> list[list[Image.Image]]:
        if any("explode" in request.prompt for request in requests):
            raise RuntimeError("CUDA out of memory (simulated)")
        progress(1, 1)
        return [_blank(request) for request in requests]


class WrongSizeBackend(_Quiet):
    def generate(
        self, requests: Sequence[GenerationInput], progress: ProgressCallback
    ) -> list[list[Image.Image]]:
        return [[Image.new("RGB", (64, 64))] for _ in requests]


class DyingBackend(_Quiet):
    """Kills its own process, as an out-of-memory killer or a segfault would."""

    def generate(
        self, requests: Sequence[GenerationInput], progress: ProgressCallback
    ) -> list[list[Image.Image]]:
        prompts = " ".join(request.prompt for request in requests)
        if "die" in prompts:
            os.kill(os.getpid(), signal.SIGKILL)
        if "oserror" in prompts:
            raise FileNotFoundError("model.safetensors is missing")
        progress(1, 1)
        return [_blank(request) for request in requests]


class UnloadableBackend(_Quiet):
    def __init__(self, spec: RouteSpec) -> None:
        raise FileNotFoundError(f"{spec.route}: model_index.json is missing")

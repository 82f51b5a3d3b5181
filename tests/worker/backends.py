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


MAGENTA = (255, 0, 255)


class ColourBackend(_Quiet):
    """Paints image *i* of a job magenta where the prompt says "magenta i" (or just
    "magenta" for every image), grey elsewhere: unsafe outputs on demand, for the checker
    below. No real unsafe image can be made or downloaded here."""

    def generate(
        self, requests: Sequence[GenerationInput], progress: ProgressCallback
    ) -> list[list[Image.Image]]:
        progress(1, 1)
        return [
            [
                Image.new(
                    "RGB",
                    (r.width, r.height),
                    MAGENTA
                    if f"magenta {i}" in r.prompt or r.prompt.endswith("magenta")
                    else (128, 128, 128),
                )
                for i in range(r.n)
            ]
            for r in requests
        ]


class MagentaChecker:
    """An output image check that calls magenta images unsafe."""

    def check(self, images: Sequence[Image.Image]) -> list[bool]:
        return [image.convert("RGB").getpixel((0, 0)) == MAGENTA for image in images]


class FlaglessChecker:
    """A broken output image check: it answers no flags at all."""

    def check(self, images: Sequence[Image.Image]) -> list[bool]:
        return []


class HeapBackend(_Quiet):
    """A "model" whose weights are 256 MiB of ordinary heap memory, every page touched."""

    SIZE = 256 * 1024**2

    def __init__(self, spec: RouteSpec) -> None:
        super().__init__(spec)
        self.weights: bytearray | None = bytearray(b"\1") * self.SIZE

    def memory_bytes(self) -> int:
        return self.SIZE

    def close(self) -> None:
        self.weights = None


class PageFaultsBackend(_Quiet):
    """Fails every job with the page faults that two 64 MiB buffers, allocated and freed one
    after the other, took in the process it runs in: how a test reads the model process's
    malloc settings from outside."""

    def generate(
        self, requests: Sequence[GenerationInput], progress: ProgressCallback
    ) -> list[list[Image.Image]]:
        import resource

        counts = []
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            buffer = bytearray(b"\1") * (64 * 1024**2)
            del buffer
            counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        raise RuntimeError(f"page faults {counts[0]} {counts[1]}")


class StagedLoadBackend(_Quiet):
    """Loads the way a model moved to a GPU does: 256 MiB read into memory while loading,
    then let go, with only a small part kept."""

    def __init__(self, spec: RouteSpec) -> None:
        super().__init__(spec)
        staging = bytearray(b"\1") * HeapBackend.SIZE
        self.weights = bytes(staging[: 1024**2])
        del staging

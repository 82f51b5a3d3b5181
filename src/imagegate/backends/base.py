"""What a backend is: one call that turns a batch of validated requests into images.

Backends are synchronous and run off the event loop, in the model process; the worker
loads them by ``"package.module:Class"`` from the registry, so the API process never
imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from imagegate.domain.registry import RouteSpec

# (step, total_steps) of the whole call. It raises when every job of the batch was
# cancelled, which unwinds the backend at its next step.
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class GenerationInput:
    task: str
    prompt: str
    n: int
    width: int
    height: int
    seed: int
    negative_prompt: str | None = None
    references: list[Image.Image] = field(default_factory=list)

    def image_seed(self, index: int) -> int:
        """Image *index* of a job has its own seed, so that it comes out the same whether
        it is rendered alone, with its siblings, or batched with other jobs."""
        return (self.seed + index) % 2**32


class Backend(Protocol):
    def __init__(self, spec: RouteSpec) -> None: ...

    def generate(
        self, requests: Sequence[GenerationInput], progress: ProgressCallback
    ) -> list[list[Image.Image]]:
        """For each request, exactly ``n`` images of exactly ``width`` x ``height``.

        The worker hands over more than one request only when the route's ``max_batch``
        allows it, and then only requests of the same task and size."""
        ...

    def memory_bytes(self) -> int:
        """What the loaded model holds (weights and buffers), for the memory budget."""
        ...

    def close(self) -> None:
        """Let go of everything the model holds; the backend is not used again."""
        ...


class BackendOutOfMemory(RuntimeError):
    """The device ran out of memory. The worker frees every other loaded model before the
    next job, so one oversized request does not leave the device full."""

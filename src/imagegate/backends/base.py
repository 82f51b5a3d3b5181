"""What a backend is: one call that turns a validated request into images.

Backends are synchronous and run off the event loop; the worker loads them by
``"package.module:Class"`` from the registry, so the API process never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from imagegate.domain.registry import RouteSpec

# (step, total_steps). It raises when the job was cancelled, which unwinds the backend.
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


class Backend(Protocol):
    def __init__(self, spec: RouteSpec) -> None: ...

    def generate(self, request: GenerationInput, progress: ProgressCallback) -> list[Image.Image]:
        """Exactly ``request.n`` images of exactly ``width`` x ``height``."""
        ...

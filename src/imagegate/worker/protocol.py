"""The typed messages between the supervisor and its model process.

Parent to child: Run, Load, Cancel, Shutdown. Child to parent: Progress, Done, Failed.
They cross a ``multiprocessing`` pipe, so everything in them must pickle. A Run carries a
batch: one or more requests that the model renders in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from imagegate.backends.base import GenerationInput
from imagegate.domain.registry import RouteSpec


@dataclass(frozen=True)
class Run:
    run_id: str
    spec: RouteSpec
    requests: list[GenerationInput]


@dataclass(frozen=True)
class Load:
    """Load a model ahead of its first job (warm-up); answered with Done or Failed."""

    run_id: str
    spec: RouteSpec


@dataclass(frozen=True)
class Cancel:
    run_id: str


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class Progress:
    run_id: str
    step: int
    total: int


@dataclass(frozen=True)
class Done:
    run_id: str
    # One list of images per request of the Run, in order.
    images: list[list[Image.Image]]
    inference_ms: int


@dataclass(frozen=True)
class Failed:
    run_id: str
    error: str
    cancelled: bool = False


class JobCancelled(Exception):
    """The job was cancelled (or is no longer this worker's) while it ran."""


ToChild = Run | Load | Cancel | Shutdown
FromChild = Progress | Done | Failed

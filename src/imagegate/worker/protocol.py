"""The typed messages between the supervisor and its model process.

Parent to child: Run, Cancel, Shutdown. Child to parent: Progress, Done, Failed.
They cross a ``multiprocessing`` pipe, so everything in them must pickle.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from imagegate.backends.base import GenerationInput
from imagegate.domain.registry import RouteSpec


@dataclass(frozen=True)
class Run:
    job_id: str
    spec: RouteSpec
    request: GenerationInput


@dataclass(frozen=True)
class Cancel:
    job_id: str


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class Progress:
    job_id: str
    step: int
    total: int


@dataclass(frozen=True)
class Done:
    job_id: str
    images: list[Image.Image]
    inference_ms: int


@dataclass(frozen=True)
class Failed:
    job_id: str
    error: str
    cancelled: bool = False


class JobCancelled(Exception):
    """The job was cancelled (or is no longer this worker's) while it ran."""


ToChild = Run | Cancel | Shutdown
FromChild = Progress | Done | Failed

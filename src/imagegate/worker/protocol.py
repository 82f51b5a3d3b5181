"""The typed messages between the supervisor and its model process.

Parent to child: Run, Load, Cancel, Shutdown. Child to parent: Progress, Done, Failed.
They cross a ``multiprocessing`` pipe, so everything in them must pickle. A Run carries a
batch: one or more requests that the model renders in one call. A Done's images follow it
on the pipe as raw pixels (``send_images``/``receive_images``), not pickled with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

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


# An image's mode and (width, height): what its raw pixels need to be read back.
Shape = tuple[str, tuple[int, int]]


@dataclass(frozen=True)
class Done:
    run_id: str
    # One list per request of the Run, in order; the images themselves follow the message.
    shapes: list[list[Shape]]
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


def send_images(
    conn: Connection, run_id: str, images: Sequence[Sequence[Image.Image]], ms: int
) -> None:
    """A Done, then each image's raw pixels. Pickling a PIL image copies its pixels three
    times into fresh buffers on the way (about 10 ms for a 1024x1024 image here, on the
    supervisor's event loop); raw bytes cross in one copy each side."""
    conn.send(Done(run_id, [[(i.mode, i.size) for i in batch] for batch in images], ms))
    for batch in images:
        for image in batch:
            conn.send_bytes(image.tobytes())


def receive_images(conn: Connection, done: Done) -> list[list[Image.Image]]:
    """The images that follow ``done`` on the pipe."""
    return [
        [Image.frombytes(mode, size, conn.recv_bytes()) for mode, size in batch]
        for batch in done.shapes
    ]

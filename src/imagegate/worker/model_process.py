"""The supervisor's handle on one model process: start it, hand it a batch, relay progress
and cancellation, notice when it dies, start a new one for the next batch."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import secrets
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import anyio
from PIL import Image

from imagegate.backends.base import GenerationInput, ProgressCallback
from imagegate.domain.registry import RouteSpec
from imagegate.worker import child
from imagegate.worker.protocol import (
    Cancel,
    Done,
    Failed,
    JobCancelled,
    Load,
    Progress,
    Run,
    Shutdown,
    receive_images,
)

log = logging.getLogger("imagegate.worker")

# The pipe wakes the event loop as soon as an answer arrives, or at once when the process
# dies (the end of file), and a stop wakes it through its event: nothing polls. Only a
# process that died while a fork of its own still holds the pipe open is noticed by this
# look, so it can be slow; a quiet supervisor keeps the model's CPU to itself.
_ALIVE_CHECK_S = 2.0


class ModelProcessDied(Exception):
    pass


async def _readable(conn: Connection, stop: anyio.Event | None, limit_s: float) -> bool:
    """Whether the pipe has an answer, waiting in the event loop until it has, ``stop`` is
    set or ``limit_s`` has passed."""
    if conn.poll():
        return True
    if stop is not None and stop.is_set():
        return False
    with anyio.move_on_after(limit_s):
        async with anyio.create_task_group() as group:
            # Neither task raises: whichever comes first ends both.

            async def answer() -> None:
                await anyio.wait_readable(conn.fileno())
                group.cancel_scope.cancel()

            async def stopped(event: anyio.Event) -> None:
                await event.wait()
                group.cancel_scope.cancel()

            group.start_soon(answer)
            if stop is not None:
                group.start_soon(stopped, stop)
    return conn.poll()


def _run_id() -> str:
    return secrets.token_hex(6)


class ModelProcess:
    def __init__(self, budget_bytes: int | None = None, *, reuse_memory: bool = True) -> None:
        self.budget_bytes = budget_bytes
        self.reuse_memory = reuse_memory
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> tuple[BaseProcess, Connection]:
        context = multiprocessing.get_context("spawn")
        parent, child_end = context.Pipe()
        root = logging.getLogger("imagegate")
        # The child logs like this process does once logging was set up (the CLI does).
        log_level = logging.getLevelName(root.getEffectiveLevel()) if root.handlers else None
        process = context.Process(
            target=child.main,
            args=(child_end, self.budget_bytes, log_level, self.reuse_memory),
            name="imagegate-model",
            daemon=True,
        )
        process.start()
        child_end.close()
        self._process, self._conn = process, parent
        log.info("model process started (pid %s)", process.pid)
        return process, parent

    def _running(self) -> tuple[BaseProcess, Connection]:
        if self._process is not None and self._conn is not None and self._process.is_alive():
            return self._process, self._conn
        self.close()
        return self._start()

    async def load(self, spec: RouteSpec) -> None:
        """Load a model ahead of its first job; raises RuntimeError if it cannot be."""
        await self._exchange(Load(_run_id(), spec), lambda step, total: None, anyio.Event())

    async def generate(
        self,
        spec: RouteSpec,
        requests: Sequence[GenerationInput],
        progress: ProgressCallback,
        stop: anyio.Event,
    ) -> tuple[list[list[Image.Image]], int]:
        """One list of images per request and the model's own time in ms; raises
        ModelProcessDied, JobCancelled once ``stop`` is set, or RuntimeError with the
        backend's message."""
        return await self._exchange(Run(_run_id(), spec, list(requests)), progress, stop)

    async def _exchange(
        self, message: Run | Load, progress: ProgressCallback, stop: anyio.Event
    ) -> tuple[list[list[Image.Image]], int]:
        process, conn = await anyio.to_thread.run_sync(self._running)
        conn.send(message)
        run_id = message.run_id
        cancel_sent = False
        while True:
            if not cancel_sent and stop.is_set():
                conn.send(Cancel(run_id))
                cancel_sent = True
            if not await _readable(conn, None if cancel_sent else stop, _ALIVE_CHECK_S):
                if not process.is_alive():
                    raise self._died(process)
                continue
            try:
                answer = conn.recv()
                images = receive_images(conn, answer) if isinstance(answer, Done) else []
            except (EOFError, OSError):
                raise self._died(process) from None
            if answer.run_id != run_id:
                continue  # a late answer about an earlier run, its images read and dropped
            if isinstance(answer, Progress):
                progress(answer.step, answer.total)
            elif isinstance(answer, Done):
                return images, answer.inference_ms
            elif isinstance(answer, Failed):
                if answer.cancelled:
                    raise JobCancelled()
                raise RuntimeError(answer.error)

    def _died(self, process: BaseProcess) -> ModelProcessDied:
        process.join(timeout=5)
        code = process.exitcode
        self.close()
        how = (
            f"was killed by signal {-code}"
            if code is not None and code < 0
            else (f"exited with code {code}")
        )
        return ModelProcessDied(f"the model process {how} while running this job")

    def close(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(Shutdown())
            conn.close()
        if process is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

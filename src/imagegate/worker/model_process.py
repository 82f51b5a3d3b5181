"""The supervisor's handle on one model process: start it, hand it a batch, relay progress
and cancellation, notice when it dies, start a new one for the next batch."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import secrets
from collections.abc import Callable, Sequence
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
)

log = logging.getLogger("imagegate.worker")

# How often the supervisor looks at the stop flag and the process while a batch runs. The
# pipe itself wakes the event loop as soon as an answer arrives (no thread, no busy poll).
_POLL_S = 0.1


class ModelProcessDied(Exception):
    pass


async def _readable(conn: Connection, limit_s: float) -> bool:
    """Whether the pipe has an answer within ``limit_s``, waiting in the event loop."""
    if conn.poll():
        return True
    with anyio.move_on_after(limit_s):
        await anyio.wait_readable(conn.fileno())
    return conn.poll()


def _run_id() -> str:
    return secrets.token_hex(6)


class ModelProcess:
    def __init__(self, budget_bytes: int | None = None) -> None:
        self.budget_bytes = budget_bytes
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
            args=(child_end, self.budget_bytes, log_level),
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
        await self._exchange(Load(_run_id(), spec), lambda step, total: None, lambda: False)

    async def generate(
        self,
        spec: RouteSpec,
        requests: Sequence[GenerationInput],
        progress: ProgressCallback,
        stop: Callable[[], bool],
    ) -> tuple[list[list[Image.Image]], int]:
        """One list of images per request and the model's own time in ms; raises
        ModelProcessDied, JobCancelled once ``stop()`` holds, or RuntimeError with the
        backend's message."""
        done = await self._exchange(Run(_run_id(), spec, list(requests)), progress, stop)
        return done.images, done.inference_ms

    async def _exchange(
        self, message: Run | Load, progress: ProgressCallback, stop: Callable[[], bool]
    ) -> Done:
        process, conn = await anyio.to_thread.run_sync(self._running)
        conn.send(message)
        run_id = message.run_id
        cancel_sent = False
        while True:
            if not cancel_sent and stop():
                conn.send(Cancel(run_id))
                cancel_sent = True
            if not await _readable(conn, _POLL_S):
                if not process.is_alive():
                    raise self._died(process)
                continue
            try:
                answer = conn.recv()
            except (EOFError, OSError):
                raise self._died(process) from None
            if answer.run_id != run_id:
                continue  # a late answer about an earlier run
            if isinstance(answer, Progress):
                progress(answer.step, answer.total)
            elif isinstance(answer, Done):
                return answer
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

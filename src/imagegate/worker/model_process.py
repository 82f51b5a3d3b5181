"""The supervisor's handle on one model process: start it, hand it a job, relay progress
and cancellation, notice when it dies, start a new one for the next job."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import anyio
from PIL import Image

from imagegate.backends.base import GenerationInput
from imagegate.domain.registry import RouteSpec
from imagegate.worker import child
from imagegate.worker.protocol import (
    Cancel,
    Done,
    Failed,
    JobCancelled,
    Progress,
    Run,
    Shutdown,
)

log = logging.getLogger("imagegate.worker")

# How often the supervisor looks at the pipe, the cancel flag and the process while a job
# runs; a short wait in a thread, so the event loop never blocks on the pipe.
_POLL_S = 0.05


class ModelProcessDied(Exception):
    pass


class ModelProcess:
    def __init__(self) -> None:
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> tuple[BaseProcess, Connection]:
        context = multiprocessing.get_context("spawn")
        parent, child_end = context.Pipe()
        process = context.Process(
            target=child.main, args=(child_end,), name="imagegate-model", daemon=True
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

    async def generate(
        self,
        job_id: str,
        spec: RouteSpec,
        request: GenerationInput,
        progress: Callable[[int, int], None],
        cancelled: anyio.Event,
    ) -> tuple[list[Image.Image], int]:
        """The images and the model's own time in ms; raises ModelProcessDied,
        JobCancelled, or RuntimeError with the backend's message."""
        process, conn = await anyio.to_thread.run_sync(self._running)
        conn.send(Run(job_id, spec, request))
        cancel_sent = False
        while True:
            if cancelled.is_set() and not cancel_sent:
                conn.send(Cancel(job_id))
                cancel_sent = True
            if not await anyio.to_thread.run_sync(conn.poll, _POLL_S):
                if not process.is_alive():
                    raise self._died(process)
                continue
            try:
                message = conn.recv()
            except (EOFError, OSError):
                raise self._died(process) from None
            if message.job_id != job_id:
                continue  # a late answer about an earlier job
            if isinstance(message, Progress):
                try:
                    progress(message.step, message.total)
                except JobCancelled:
                    # The child is told at the top of the loop; leaving now would strand
                    # its "cancelled" answer in the pipe, to be read as the next job's.
                    continue
            elif isinstance(message, Done):
                return message.images, message.inference_ms
            elif isinstance(message, Failed):
                if message.cancelled:
                    raise JobCancelled()
                raise RuntimeError(message.error)

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

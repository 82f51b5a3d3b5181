"""The model process: loads backends once and runs requests from its pipe.

It is started with ``spawn`` (a fresh interpreter, no inherited locks or CUDA state), so a
crash here (out of memory, a segfault in a kernel) kills only this process; the
supervisor fails the job it was running and starts a new one.
"""

from __future__ import annotations

import importlib
import time
from multiprocessing.connection import Connection
from typing import Any

from imagegate.domain.registry import RouteSpec
from imagegate.worker.protocol import Cancel, Done, Failed, Progress, Run, Shutdown


class _Cancelled(Exception):
    pass


def load_backend(spec: RouteSpec) -> Any:
    module_name, _, class_name = spec.backend_path.partition(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(spec)


def _cancel_requested(conn: Connection, job_id: str) -> bool:
    # Only Cancel can arrive while a job runs: the supervisor sends one Run at a time.
    while conn.poll():
        message = conn.recv()
        if isinstance(message, Cancel) and message.job_id == job_id:
            return True
    return False


class _PipeClosed(Exception):
    pass


def run(conn: Connection, message: Run, backends: dict[str, Any]) -> None:
    job_id = message.job_id

    def progress(step: int, total: int) -> None:
        try:
            conn.send(Progress(job_id, step, total))
        except OSError as exc:
            raise _PipeClosed() from exc
        if _cancel_requested(conn, job_id):
            raise _Cancelled()

    answer: Done | Failed
    try:
        backend = backends.get(message.spec.route)
        if backend is None:
            backend = backends[message.spec.route] = load_backend(message.spec)
        started = time.perf_counter()
        images = backend.generate(message.request, progress)
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        answer = Done(job_id, list(images), elapsed_ms)
    except _PipeClosed:
        raise OSError("the supervisor's pipe is closed") from None
    except _Cancelled:
        answer = Failed(job_id, "cancelled", cancelled=True)
    except Exception as exc:
        answer = Failed(job_id, str(exc) or type(exc).__name__)
    conn.send(answer)


def main(conn: Connection) -> None:
    backends: dict[str, Any] = {}
    try:
        while True:
            message = conn.recv()
            if isinstance(message, Shutdown):
                return
            if isinstance(message, Run):
                run(conn, message, backends)
    except (EOFError, OSError, KeyboardInterrupt):
        # The supervisor is gone (killed, or shutting down): so is the reason to run. A
        # job in hand stops at its next progress step, when the pipe refuses the send.
        return

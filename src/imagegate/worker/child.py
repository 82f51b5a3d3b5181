"""The model process: loads backends and runs batches from its pipe.

It is started with ``spawn`` (a fresh interpreter, no inherited locks or CUDA state), so a
crash here (out of memory, a segfault in a kernel) kills only this process; the
supervisor fails the jobs it was running and starts a new one.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection

from imagegate.logs import configure_logging
from imagegate.worker.model_cache import ModelCache
from imagegate.worker.protocol import Cancel, Done, Failed, Load, Progress, Run, Shutdown


class _Cancelled(Exception):
    pass


class _PipeClosed(Exception):
    pass


def _cancel_requested(conn: Connection, run_id: str) -> bool:
    # Only Cancel can arrive while a batch runs: the supervisor sends one Run at a time.
    while conn.poll():
        message = conn.recv()
        if isinstance(message, Cancel) and message.run_id == run_id:
            return True
    return False


def run(conn: Connection, message: Run, models: ModelCache) -> None:
    run_id = message.run_id

    def progress(step: int, total: int) -> None:
        try:
            conn.send(Progress(run_id, step, total))
        except OSError as exc:
            raise _PipeClosed() from exc
        if _cancel_requested(conn, run_id):
            raise _Cancelled()

    answer: Done | Failed
    try:
        started = time.perf_counter()
        images = models.generate(message.spec, message.requests, progress)
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        answer = Done(run_id, [list(batch) for batch in images], elapsed_ms)
    except _PipeClosed:
        raise OSError("the supervisor's pipe is closed") from None
    except _Cancelled:
        answer = Failed(run_id, "cancelled", cancelled=True)
    except Exception as exc:
        answer = Failed(run_id, str(exc) or type(exc).__name__)
    conn.send(answer)


def load(conn: Connection, message: Load, models: ModelCache) -> None:
    answer: Done | Failed
    try:
        models.get(message.spec)
        answer = Done(message.run_id, [], 0)
    except Exception as exc:
        answer = Failed(message.run_id, str(exc) or type(exc).__name__)
    conn.send(answer)


def main(conn: Connection, budget_bytes: int | None, log_level: str | None) -> None:
    if log_level is not None:
        configure_logging(log_level)
    models = ModelCache(budget_bytes)
    try:
        while True:
            message = conn.recv()
            if isinstance(message, Shutdown):
                return
            if isinstance(message, Run):
                run(conn, message, models)
            elif isinstance(message, Load):
                load(conn, message, models)
    except (EOFError, OSError, KeyboardInterrupt):
        # The supervisor is gone (killed, or shutting down): so is the reason to run. A
        # batch in hand stops at its next progress step, when the pipe refuses the send.
        return
    finally:
        models.clear()

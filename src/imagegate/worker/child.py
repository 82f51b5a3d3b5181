"""The model process: loads backends and runs batches from its pipe.

It is started with ``spawn`` (a fresh interpreter, no inherited locks or CUDA state), so a
crash here (out of memory, a segfault in a kernel) kills only this process; the
supervisor fails the jobs it was running and starts a new one.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from multiprocessing.connection import Connection

from imagegate.logs import configure_logging
from imagegate.worker import allocator
from imagegate.worker.model_cache import ModelCache
from imagegate.worker.protocol import (
    Cancel,
    Done,
    Failed,
    Load,
    Progress,
    Run,
    Shutdown,
    ToChild,
    send_images,
)

log = logging.getLogger("imagegate.models")


class _Cancelled(Exception):
    pass


class _PipeClosed(Exception):
    pass


class Inbox:
    """The supervisor's messages, with those read while a batch ran kept for after it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._early: deque[ToChild] = deque()

    def next(self) -> ToChild:
        message: ToChild = self._early.popleft() if self._early else self.conn.recv()
        return message

    def stop_running(self, run_id: str) -> bool:
        """Whether the running batch is no longer wanted: cancelled, or given up on. The
        supervisor sends one message at a time and waits for its answer, so any other
        message means it stopped waiting (its caller was cancelled, or it is shutting down):
        that message is kept, to be handled next."""
        while self.conn.poll():
            message: ToChild = self.conn.recv()
            if isinstance(message, Cancel):
                if message.run_id == run_id:
                    return True
                continue  # a late cancel of an earlier batch
            self._early.append(message)
            return True
        return False


def run(inbox: Inbox, message: Run, models: ModelCache) -> None:
    run_id, conn = message.run_id, inbox.conn

    def progress(step: int, total: int) -> None:
        try:
            conn.send(Progress(run_id, step, total))
        except OSError as exc:
            raise _PipeClosed() from exc
        if inbox.stop_running(run_id):
            raise _Cancelled()

    try:
        started = time.perf_counter()
        images = models.generate(message.spec, message.requests, progress)
        elapsed_ms = round((time.perf_counter() - started) * 1000)
    except _PipeClosed:
        raise OSError("the supervisor's pipe is closed") from None
    except _Cancelled:
        conn.send(Failed(run_id, "cancelled", cancelled=True))
    except Exception as exc:
        conn.send(Failed(run_id, str(exc) or type(exc).__name__))
    else:
        send_images(conn, run_id, images, elapsed_ms)


def load(conn: Connection, message: Load, models: ModelCache) -> None:
    answer: Done | Failed
    try:
        models.get(message.spec)
        answer = Done(message.run_id, [], 0)
    except Exception as exc:
        answer = Failed(message.run_id, str(exc) or type(exc).__name__)
    conn.send(answer)


def main(
    conn: Connection, budget_bytes: int | None, log_level: str | None, reuse_memory: bool = True
) -> None:
    if log_level is not None:
        configure_logging(log_level)
    # Before any model allocates: the settings apply to allocations made from now on.
    if reuse_memory and allocator.keep_freed_memory():
        log.debug("freed memory is kept for reuse (IMAGEGATE_MODEL_MEMORY_REUSE)")
    models = ModelCache(budget_bytes)
    inbox = Inbox(conn)
    try:
        while True:
            message = inbox.next()
            if isinstance(message, Shutdown):
                return
            if isinstance(message, Run):
                run(inbox, message, models)
            elif isinstance(message, Load):
                load(conn, message, models)
    except (EOFError, OSError, KeyboardInterrupt):
        # The supervisor is gone (killed, or shutting down): so is the reason to run. A
        # batch in hand stops at its next progress step, when the pipe refuses the send.
        return
    finally:
        models.clear()

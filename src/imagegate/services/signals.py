"""In-process wake-ups: a job changed, or new work arrived.

They only shorten waits. Every waiter also re-reads the database on a timer, so a change
made by another process (a second server, a separate worker) is seen within the poll
interval; on PostgreSQL, ``deliver`` brings other processes' changes at once.
"""

from __future__ import annotations

import anyio

from imagegate.store.notifications import WORK


class JobSignals:
    def __init__(self) -> None:
        self._job_waiters: dict[str, list[anyio.Event]] = {}
        self._work = anyio.Event()

    def job_changed(self, job_id: str) -> None:
        for event in self._job_waiters.pop(job_id, []):
            event.set()

    async def wait_job_changed(self, job_id: str, limit_s: float) -> bool:
        """Whether the job changed (False: the time ran out)."""
        event = anyio.Event()
        waiters = self._job_waiters.setdefault(job_id, [])
        waiters.append(event)
        try:
            with anyio.move_on_after(limit_s):
                await event.wait()
        finally:
            if event in waiters:
                waiters.remove(event)
            if not waiters:
                self._job_waiters.pop(job_id, None)
        return event.is_set()

    def deliver(self, payload: str) -> None:
        """A change announced by any process (PostgreSQL NOTIFY): "work", or a job id."""
        if payload == WORK:
            self.work_available()
        else:
            self.job_changed(payload)

    def work_available(self) -> None:
        self._work.set()

    async def wait_for_work(self, limit_s: float) -> None:
        with anyio.move_on_after(limit_s):
            await self._work.wait()
        # Every idle worker wakes on one event; they race for the claim and the losers
        # go back to sleep, which is cheap at a handful of workers per process.
        if self._work.is_set():
            self._work = anyio.Event()

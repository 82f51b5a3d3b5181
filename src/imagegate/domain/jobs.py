"""The job state machine: created -> processing -> completed | failed; terminal is final."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from imagegate.domain.requests import JobParams


class JobStatus(StrEnum):
    CREATED = "created"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CREATED: frozenset({JobStatus.PROCESSING, JobStatus.FAILED}),
    # processing -> created is a lapsed lease handed back to the queue.
    JobStatus.PROCESSING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CREATED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
}

CANCELLED_ERROR = "cancelled"
# A job whose lease lapsed this many times is failed rather than retried forever:
# a request that kills its worker every time must not take the queue down with it.
MAX_ATTEMPTS = 3


def can_move(current: JobStatus, target: JobStatus) -> bool:
    return target in ALLOWED[current]


def is_terminal(status: JobStatus) -> bool:
    return status in TERMINAL


@dataclass(frozen=True)
class Job:
    id: str
    account_id: str
    route: str
    task: str
    status: JobStatus
    params: JobParams
    reference_keys: tuple[str, ...]
    outputs: tuple[str, ...]
    nsfw: tuple[bool, ...]
    error: str | None
    execution_ms: int
    inference_ms: int
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None = None
    progress_step: int = 0
    progress_total: int = 0
    key_id: str | None = None
    price_micros: int = 0  # what the submit charged; refunded once if the job fails
    lane: str = "local"
    target: int = 0
    plan: tuple[int, ...] = (0,)
    hop: int = 0
    ran_on: str | None = None
    upstream_state: str | None = None
    upstream_key: str | None = None
    upstream_id: str | None = None
    cost_micros: int = 0

    @property
    def next_target(self) -> int | None:
        """The target a failover moves this job to, or None when its plan is spent."""
        return self.plan[self.hop + 1] if self.hop + 1 < len(self.plan) else None

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.status)

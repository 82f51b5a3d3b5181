"""The time source the services read, injectable so tests never sleep to move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Naive UTC, the convention of the store."""
    return datetime.now(UTC).replace(tzinfo=None)


def epoch(moment: datetime) -> float:
    """Seconds since the epoch of a naive-UTC store time."""
    return moment.replace(tzinfo=UTC).timestamp()


def to_store_time(moment: datetime | None) -> datetime | None:
    """An aware time (from a client) as naive UTC; a naive one is taken as UTC already."""
    if moment is not None and moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment

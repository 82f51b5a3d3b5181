"""The limits of an account or a key, rate-limit strings ("60/minute", "10 per second")
and key lifetimes ("30d")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from limits import RateLimitItem, parse

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class RateError(ValueError):
    pass


@dataclass(frozen=True)
class Limits:
    """What an account or a key may do at once and per window; None: no limit."""

    max_concurrent: int | None = None
    rate_limit: str | None = None  # "60/minute", read by parse_rate


NO_LIMITS = Limits()


def parse_rate(text: str) -> RateLimitItem:
    """One rate in the ``limits`` notation: "10/minute", "100/hour", "5 per second"."""
    try:
        item = parse(text)
    except ValueError as exc:
        raise RateError(
            f"{text!r} is not a rate limit; write it like '10/minute' or '100/hour'"
        ) from exc
    if item.amount < 1:
        raise RateError(f"{text!r} allows nothing; the count must be at least 1")
    return item


def parse_duration(text: str) -> timedelta:
    """ "90m", "12h", "30d", "2w" as a timedelta."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise RateError(f"{text!r} is not a duration; write it like '90m', '12h' or '30d'")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})

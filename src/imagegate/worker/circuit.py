"""A circuit breaker per upstream target: after ``failures`` failures in a row the target
gets no new jobs for ``cooldown_s`` (they go straight to the next target); then one job is
let through, and its outcome closes the circuit or opens it again."""

from __future__ import annotations

import logging
import time

from prometheus_client import Gauge

log = logging.getLogger("imagegate.upstream")

CIRCUIT_OPEN = Gauge(
    "imagegate_upstream_circuit_open",
    "1 while a route's upstream target gets no new jobs because it kept failing",
    ["route", "target"],
)


class CircuitBreaker:
    def __init__(self, route: str, target: str, failures: int, cooldown_s: float) -> None:
        self.route = route
        self.target = target
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None
        # When the half-open trial was let through; a trial that never reports back (its
        # job cancelled, or refused for its key) gives way to another after a cooldown.
        self.trial_at: float | None = None

    @property
    def trial(self) -> bool:
        return self.trial_at is not None

    def allows(self) -> bool:
        if self.opened_at is None:
            return True
        now = time.monotonic()
        if now - self.opened_at < self.cooldown_s:
            return False
        if self.trial_at is not None and now - self.trial_at < self.cooldown_s:
            return False
        self.trial_at = now  # half-open: this one job decides
        return True

    def succeeded(self) -> None:
        if self.opened_at is not None:
            log.info("upstream %s of %s works again; circuit closed", self.target, self.route)
        self.failures = 0
        self.opened_at = None
        self.trial_at = None
        CIRCUIT_OPEN.labels(self.route, self.target).set(0)

    def failed(self) -> None:
        self.failures += 1
        if self.trial or (self.opened_at is None and self.failures >= self.threshold):
            log.error(
                "upstream %s of %s failed %d times in a row; no new jobs for %.0f s",
                self.target,
                self.route,
                self.failures,
                self.cooldown_s,
            )
            self.opened_at = time.monotonic()
            self.trial_at = None
            CIRCUIT_OPEN.labels(self.route, self.target).set(1)

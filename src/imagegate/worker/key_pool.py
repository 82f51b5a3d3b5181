"""A provider's API keys, each with its own cap on jobs in flight, and taken out of use when
the provider refuses it (revoked, out of credit).

Keys come from the environment variable a target names, never from the registry file, and
are known elsewhere only by a fingerprint: the job stores which key it used, so that after
a restart the same key reads the same upstream job.
"""

from __future__ import annotations

import hashlib
import logging
import os

import anyio
from prometheus_client import Counter

log = logging.getLogger("imagegate.upstream")

KEYS_DISABLED = Counter(
    "imagegate_upstream_keys_disabled",
    "Provider API keys taken out of use after the provider refused them",
    ["env", "fingerprint"],
)


class NoUsableKey(Exception):
    pass


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class KeyPool:
    def __init__(self, env: str, per_key: int) -> None:
        self.env = env
        self.per_key = per_key
        raw = os.environ.get(env, "")
        self.keys = [k.strip() for k in raw.split(",") if k.strip()]
        self.in_use = dict.fromkeys(self.keys, 0)
        self.disabled: dict[str, str] = {}
        self._freed = anyio.Event()

    def usable(self) -> list[str]:
        return [k for k in self.keys if k not in self.disabled]

    def by_fingerprint(self, value: str | None) -> str | None:
        return next((k for k in self.keys if fingerprint(k) == value), None)

    async def acquire(self) -> str:
        """The usable key with the most room, waiting while every one is at its cap."""
        while True:
            usable = self.usable()
            if not usable:
                raise NoUsableKey(
                    f"no usable API key in ${self.env}"
                    + (f" ({len(self.disabled)} taken out)" if self.disabled else " (unset)")
                )
            key = min(usable, key=lambda k: self.in_use[k])
            if self.in_use[key] < self.per_key:
                self.in_use[key] += 1
                return key
            await self._freed.wait()

    def hold(self, key: str) -> None:
        """Count a job resumed on ``key`` (it was already running at the provider)."""
        self.in_use[key] += 1

    def release(self, key: str) -> None:
        self.in_use[key] -= 1
        self._wake()

    def disable(self, key: str, reason: str) -> None:
        if key in self.disabled:
            return
        self.disabled[key] = reason
        KEYS_DISABLED.labels(self.env, fingerprint(key)).inc()
        log.error("API key %s from $%s taken out of use: %s", fingerprint(key), self.env, reason)
        self._wake()

    def _wake(self) -> None:
        self._freed.set()
        self._freed = anyio.Event()

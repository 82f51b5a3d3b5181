"""Requests per window, per key and per account, on the ``limits`` library's moving window:
in this process's memory by default, or in Redis (``IMAGEGATE_REDIS_URL``), where the
window is kept by Lua scripts that run atomically, so every server process sharing the
Redis enforces one limit between them.

Submits count against the key's limit (else the server's default) and the account's.
Reads (results, lists, cancels) count against a separate, more generous limit per key, so
a client polling for its results does not use up its submits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from imagegate.domain.rates import parse_rate
from imagegate.errors import RateLimitedError
from imagegate.services.accounts import Principal
from imagegate.settings import Settings

Action = Literal["submit", "read"]


@dataclass(frozen=True)
class Quota:
    """Where a caller stands against one limit after a request."""

    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the oldest counted request leaves the window

    def headers(self, now: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(max(0, math.ceil(self.reset_at - now))),
        }


class RateLimitService:
    def __init__(self, settings: Settings) -> None:
        self._pool: Any = None
        self._storage: Storage = MemoryStorage()
        if settings.redis_url:
            try:
                from redis.asyncio import ConnectionPool
            except ImportError as exc:
                raise RuntimeError(
                    "IMAGEGATE_REDIS_URL is set but redis is not installed: "
                    'pip install "imagegate[redis]"'
                ) from exc
            # Our own pool, handed to limits' redis-py bridge, so that closing is ours too.
            self._pool = ConnectionPool.from_url(settings.redis_url)
            self._storage = RedisStorage(
                f"async+{settings.redis_url}",
                implementation="redispy",
                key_prefix="imagegate",
                connection_pool=self._pool,
            )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._default_submit = (
            parse_rate(settings.submit_rate_limit) if settings.submit_rate_limit else None
        )
        self._read = parse_rate(settings.read_rate_limit) if settings.read_rate_limit else None

    def _limits(self, principal: Principal, action: Action) -> list[tuple[RateLimitItem, str]]:
        if action == "read":
            return [] if self._read is None else [(self._read, f"key:{principal.key_id}:read")]
        found: list[tuple[RateLimitItem, str]] = []
        key_rate = principal.limits.rate_limit
        key_item = parse_rate(key_rate) if key_rate else self._default_submit
        if key_item is not None:
            found.append((key_item, f"key:{principal.key_id}:submit"))
        account_rate = principal.account_limits.rate_limit
        if account_rate:
            found.append((parse_rate(account_rate), f"account:{principal.account_id}:submit"))
        return found

    async def hit(self, principal: Principal, action: Action) -> Quota | None:
        """Count one request; raise 429 when a limit is spent. The tightest quota left
        (for the response's headers), or None when nothing limits this request."""
        tightest: Quota | None = None
        for item, scope in self._limits(principal, action):
            allowed = await self._limiter.hit(item, scope)
            stats = await self._limiter.get_window_stats(item, scope)
            quota = Quota(item.amount, stats.remaining, stats.reset_time)
            if not allowed:
                now = time.time()
                who = "key" if scope.startswith("key:") else "account"
                raise RateLimitedError(
                    f"rate limit exceeded: this {who} may make {item} {action} requests",
                    retry_after_s=max(1, math.ceil(quota.reset_at - now)),
                    headers=quota.headers(now),
                )
            if tightest is None or quota.remaining < tightest.remaining:
                tightest = quota
        return tightest

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()

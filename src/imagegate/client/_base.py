"""What the sync and async clients share: configuration, the retry rule, and turning a
``Call`` into an httpx request."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import httpx

from imagegate.client._errors import APIConnectionError, APITimeoutError, parse_retry_after
from imagegate.client._operations import Call

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
try:
    from importlib.metadata import version

    _VERSION = version("imagegate")
except Exception:
    _VERSION = "0"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's Retry-After wins, up to a cap."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and (asked := parse_retry_after(response.headers)) is not None:
            return min(asked, self.max_retry_after)
        backoff = min(self.max_delay, self.initial_delay * 2.0**attempt)
        return backoff * (1 - 0.25 * random.random())


class Config:
    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
    ) -> None:
        self.base_url = (
            base_url or os.environ.get("IMAGEGATE_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("IMAGEGATE_API_KEY")
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries=max_retries)

    def request(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        headers = {"User-Agent": f"imagegate-python/{_VERSION}", **call.headers}
        if call.authorized and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = call.path if "://" in call.path else self.base_url + call.path
        extra: dict[str, Any] = {}
        if call.timeout is not None:
            extra["timeout"] = httpx.Timeout(call.timeout, connect=min(10.0, call.timeout))
        return http.build_request(
            call.method,
            url,
            json=call.json,
            params=call.params,
            files=call.files,
            content=call.content,
            headers=headers,
            **extra,
        )

    def should_retry(self, call: Call, attempt: int, response: httpx.Response | None) -> bool:
        if not call.retry or attempt >= self.retry.max_retries:
            return False
        return response is None or response.status_code in RETRIED_STATUSES


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"the server did not answer in time: {exc}")
    return APIConnectionError(f"could not reach the server: {exc}")

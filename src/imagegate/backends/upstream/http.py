"""One reading of provider HTTP answers for every adapter: which status means what
(``base.ErrorKind``), ``Retry-After``, and which transport errors mean the request may have
reached the provider."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC
from typing import Any

import httpx

from imagegate.backends.upstream.base import ErrorKind, UpstreamError

# Gateways' answers when they gave up waiting for the provider, which may still have
# taken the job: Cloudflare's 520-524 and the usual 502/504.
_LOST = frozenset({502, 504, 520, 521, 522, 523, 524})
_KEY_WORDS = ("insufficient", "balance", "credit", "quota", "billing", "payment")
_CONTENT_WORDS = ("safety", "content policy", "nsfw", "sensitive", "moderation", "flagged")


# A provider's Retry-After is honoured up to this; a longer (or garbled, or infinite) one
# must not park a job and its key for good.
MAX_RETRY_AFTER_S = 120.0


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date), capped; None when
    it is absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def message_of(response: httpx.Response) -> str:
    """The provider's own words: the common envelope fields, else the start of the body."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        for name in ("message", "detail", "error", "title"):
            value = body.get(name)
            if isinstance(value, dict):
                value = value.get("message")
            elif isinstance(value, list):
                # FastAPI's (and fal's) list of errors: {"loc", "msg", "type"} each.
                value = "; ".join(str(e.get("msg")) for e in value if isinstance(e, dict))
            if isinstance(value, str) and value:
                return value[:300]
    return str(body)[:300]


def error_codes(response: httpx.Response) -> set[str]:
    """The machine-readable codes of an error body, wherever the common envelopes put
    them: OpenAI's ``error.code``/``error.type``, fal's ``error_type`` and ``detail[].type``."""
    try:
        body: Any = response.json()
    except ValueError:
        return set()
    if not isinstance(body, dict):
        return set()
    found: list[Any] = [body.get("code"), body.get("type"), body.get("error_type")]
    error = body.get("error")
    if isinstance(error, dict):
        found += [error.get("code"), error.get("type")]
    detail = body.get("detail")
    if isinstance(detail, list):
        found += [item.get("type") for item in detail if isinstance(item, dict)]
    return {code for code in found if isinstance(code, str) and code}


def json_object(response: httpx.Response, provider: str) -> dict[str, Any]:
    """The JSON object of a successful answer; anything else means the provider is not
    answering as documented, which another target may do better."""
    try:
        body = response.json()
    except ValueError as exc:
        raise UpstreamError("transient", f"{provider} answered with no JSON") from exc
    if not isinstance(body, dict):
        raise UpstreamError("transient", f"{provider} answered without a JSON object")
    return body


def failed_job(provider: str, reason: object) -> UpstreamError:
    """The error for a job the provider took and then failed: blocked by its content
    policy, or a failure that another target may not repeat."""
    message = str(reason or "no reason given")
    kind: ErrorKind = "content" if content_blocked(message) else "failed"
    return UpstreamError(kind, f"{provider} failed the job: {message}")


def content_blocked(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _CONTENT_WORDS)


def check(
    response: httpx.Response,
    provider: str,
    *,
    sent_job: bool,
    codes: Mapping[str, ErrorKind] | None = None,
) -> None:
    """Raise ``UpstreamError`` for an answer that is not a success. ``sent_job`` says the
    request may have created a job (a submit), so a lost answer is "unknown". ``codes``
    maps the provider's own error codes to kinds where its status alone misleads (OpenAI
    answers an empty account with 429 ``insufficient_quota``, which is no rate limit)."""
    status = response.status_code
    if status < 400:
        return
    message = message_of(response)
    said = f"{provider} answered {status}: {message}"
    about_key = any(word in message.lower() for word in _KEY_WORDS)
    coded = sorted(codes[code] for code in error_codes(response) if code in codes) if codes else []
    kind: ErrorKind
    if coded:
        kind = coded[0]
    elif status == 429:
        kind = "rate"
    elif status in (401, 402) or (status < 500 and about_key):
        kind = "key"  # revoked, or out of credit: another key may work
    elif status == 403 and not content_blocked(message):
        kind = "key"  # a key without access to the model
    elif status == 408:
        kind = "transient"  # the provider gave up reading the request: nothing was made
    elif status < 500:
        kind = "content" if content_blocked(message) else "rejected"
    elif status in _LOST and sent_job:
        kind = "unknown"
    else:
        kind = "transient"
    raise UpstreamError(kind, said, retry_after_s=retry_after(response))


async def request(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    provider: str,
    *,
    sent_job: bool = False,
    timeout: float | None = None,  # noqa: ASYNC109 - httpx's own per-request timeout
    codes: Mapping[str, ErrorKind] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send, and turn the transport's failures into ``UpstreamError``: a request that
    never connected is transient; one that was sent and not answered is unknown when it
    may have created a job."""
    try:
        response = await http.request(
            method,
            url,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            **kwargs,
        )
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise UpstreamError(
            "transient", f"{provider} could not be reached: {type(exc).__name__}"
        ) from exc
    except httpx.TransportError as exc:
        kind: ErrorKind = "unknown" if sent_job else "transient"
        raise UpstreamError(
            kind, f"{provider} sent no answer: {type(exc).__name__} {exc}".strip()
        ) from exc
    check(response, provider, sent_job=sent_job, codes=codes)
    return response

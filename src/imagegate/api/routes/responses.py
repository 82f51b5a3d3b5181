"""The error envelopes each route can answer, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from imagegate.wire import ErrorEnvelope

_DESCRIPTIONS = {
    400: "invalid request: the message names the field and the rule",
    401: "the API key is missing, invalid, revoked or expired",
    403: "the key may not use this model, or the balance is below the job's price",
    404: "not found",
    413: "request body or image too large",
    429: "rate limit exceeded; Retry-After says when to try again",
    503: "not ready: a dependency does not answer",
    500: "unexpected failure; the message carries a correlation id",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[code]} for code in (*codes, 500)
    }

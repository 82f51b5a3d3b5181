"""The SDK's errors, one class per kind of failure, mapped from the envelope's code in one
function (``error_from_response``)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

CONTENT_BLOCKED = "content blocked due to safety concerns"


class ImagegateClientError(Exception):
    """Everything the SDK raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(ImagegateClientError):
    """The server could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The server did not answer in time."""


class APIStatusError(ImagegateClientError):
    """The server answered with an error envelope."""

    def __init__(
        self, message: str, *, status_code: int, code: int, body: Any, headers: httpx.Headers
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.body = body
        self.headers = headers


class BadRequestError(APIStatusError):
    """400: the message names the field and the rule."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, unknown, revoked or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model."""


class InsufficientBalanceError(PermissionDeniedError):
    """403: the balance is below the job's price."""


class NotFoundError(APIStatusError):
    """404: no such route, task or prediction."""


class RequestTooLargeError(APIStatusError):
    """413: the body or an image is over the server's limit."""


class RateLimitError(APIStatusError):
    """429: over a rate or concurrency limit; ``retry_after`` is in seconds."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers)


class ContentPolicyError(APIStatusError):
    """The prompt or an output was blocked (HTTP 400 with code 503)."""


class ServerError(APIStatusError):
    """5xx: the server failed; the message carries a correlation id."""


class PredictionFailedError(ImagegateClientError):
    """A job that was accepted ended ``failed``; ``prediction`` is how it ended."""

    def __init__(self, message: str, prediction: Any) -> None:
        super().__init__(message)
        self.prediction = prediction


class OutputBlockedError(PredictionFailedError, ContentPolicyError):
    """A job whose output the server's image check blocked."""

    def __init__(self, message: str, prediction: Any) -> None:
        # Not through the two parents' __init__s: their signatures differ.
        ImagegateClientError.__init__(self, message)
        self.prediction = prediction
        self.status_code, self.code, self.body, self.headers = 200, 503, None, httpx.Headers()


def parse_retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the other form HTTP allows: a date
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
}


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The error for an answer that is not a success envelope."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    code = body.get("code", response.status_code) if isinstance(body, dict) else 0
    message = (
        str(body.get("message"))
        if isinstance(body, dict) and body.get("message")
        else f"HTTP {response.status_code}: {response.text[:200]}"
    )
    kind: type[APIStatusError]
    if code == 503 and response.status_code == 400:
        kind = ContentPolicyError
    elif response.status_code == 403 and "balance" in message:
        kind = InsufficientBalanceError
    elif response.status_code >= 500:
        kind = ServerError
    else:
        kind = _BY_STATUS.get(response.status_code, APIStatusError)
    return kind(
        message,
        status_code=response.status_code,
        code=int(code) if isinstance(code, int) else 0,
        body=body,
        headers=response.headers,
    )

"""The one error tree. Each class fixes its HTTP status and envelope ``code`` (SPEC §4)."""

from __future__ import annotations


class ImagegateError(Exception):
    http_status: int = 500
    code: int = 500
    default_message: str = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BadRequestError(ImagegateError):
    http_status = code = 400
    default_message = "invalid request"


class AuthenticationError(ImagegateError):
    http_status = code = 401
    default_message = "the API key is missing or invalid"


class PermissionDeniedError(ImagegateError):
    http_status = code = 403
    default_message = "the API key may not use this model"


class InsufficientBalanceError(PermissionDeniedError):
    default_message = "insufficient balance for this job"


class NotFoundError(ImagegateError):
    http_status = code = 404
    default_message = "not found"


class MethodNotAllowedError(ImagegateError):
    http_status = code = 405
    default_message = "method not allowed"


class PayloadTooLargeError(ImagegateError):
    http_status = code = 413
    default_message = "request body too large"


class RateLimitedError(ImagegateError):
    http_status = code = 429
    default_message = "rate limit exceeded"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after_s: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = {**(headers or {}), "Retry-After": str(retry_after_s)}


class ContentBlockedError(ImagegateError):
    # The reference API answers policy blocks with HTTP 400 but envelope code 503.
    http_status = 400
    code = 503
    default_message = "content blocked due to safety concerns"


class NotReadyError(ImagegateError):
    http_status = code = 503
    default_message = "not ready"


class InternalError(ImagegateError):
    http_status = code = 500
    default_message = "internal error"

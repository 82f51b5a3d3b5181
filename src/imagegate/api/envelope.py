"""The one place where exceptions become responses: every answer is the contract's envelope
``{"code", "message", "data"}`` (SPEC §2, §4), FastAPI's own 404/405/422 included."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.errors import ImagegateError, RateLimitedError

log = logging.getLogger("imagegate.api")


def ok(data: BaseModel) -> Response:
    """A success envelope, serialised once: building the JSON around the model's own dump
    skips the second validation a ``response_model`` would run on every answer."""
    body = b'{"code":200,"message":"success","data":' + data.model_dump_json().encode() + b"}"
    return Response(content=body, media_type="application/json")


def error_response(
    status: int,
    code: int,
    message: str,
    data: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"code": code, "message": message, "data": data},
        headers=headers,
    )


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    if not parts:
        return "body" if loc and loc[0] == "body" else ".".join(str(p) for p in loc)
    text = parts[0]
    for part in parts[1:]:
        text += f"[{part}]" if part.isdigit() else f".{part}"
    return text


def _rule(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "is not valid JSON"
    if kind == "missing":
        return "is required"
    if kind == "model_attributes_type" or kind == "dict_type":
        return "must be a JSON object"
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ").replace("Input should be", "must be")


def validation_message(errors: Sequence[Any]) -> str:
    parts = []
    for error in errors[:5]:
        parts.append(f"{_field(error.get('loc', ()))}: {_rule(error)}")
    return "; ".join(parts) or "invalid request"


async def _imagegate_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ImagegateError)
    headers = None
    if isinstance(exc, RateLimitedError):
        headers = exc.headers
    return error_response(exc.http_status, exc.code, exc.message, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, 400, validation_message(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"path {request.url.path} not found"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, exc.status_code, message, headers=exc.headers)


class CatchAll:
    """Unexpected exceptions become a 500 envelope with a correlation id; the traceback
    goes to the log once. (An exception handler for ``Exception`` would answer the same,
    but Starlette re-raises after it, so every failure was logged twice.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            correlation_id = secrets.token_hex(8)
            log.exception(
                "unexpected error on %s %s",
                scope.get("method"),
                scope.get("path"),
                extra={"correlation_id": correlation_id},
            )
            if started:
                raise
            response = error_response(
                500,
                500,
                f"internal error; correlation id {correlation_id}",
                data={"correlation_id": correlation_id},
            )
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ImagegateError, _imagegate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(CatchAll)


def json_error_body(code: int, message: str) -> bytes:
    return json.dumps({"code": code, "message": message, "data": None}).encode()

"""``create_app(settings)``: the HTTP application, with its services opened in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from imagegate import __version__
from imagegate.api import envelope
from imagegate.api.limits import BodySizeLimit, RateLimitHeaders
from imagegate.api.routes import admin, events, media, ops, predictions, upstream_hooks
from imagegate.services.clock import Clock, utc_now
from imagegate.services.container import Services, open_services
from imagegate.settings import Settings

# Something to run beside the API for as long as it serves (the in-process worker).
Companion = Callable[[Services], AbstractAsyncContextManager[None]]


def _contract_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI documents a 422 for every route with a body or parameters; imagegate answers
    those as 400 in the envelope, so the document says that instead."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                responses.pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    return build


def create_app(
    settings: Settings, *, companion: Companion | None = None, clock: Clock = utc_now
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings, clock=clock) as services:
            app.state.services = services
            if companion is None:
                yield
            else:
                async with companion(services):
                    yield

    app = FastAPI(
        title="imagegate",
        version=__version__,
        description="Image generation over the v3 prediction API (GPTProto / WaveSpeedAI).",
        lifespan=lifespan,
    )
    app.include_router(ops.router)
    app.include_router(media.router)
    app.include_router(predictions.router)
    app.include_router(events.router)
    app.include_router(admin.router)
    app.include_router(upstream_hooks.router)
    # Last: its /{owner}/{model}/{task} pattern would shadow the fixed paths above.
    app.include_router(predictions.submit_router)
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(
        BodySizeLimit,
        max_request_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    envelope.install(app)  # last: its catch-all must wrap every other middleware
    app.openapi = _contract_openapi(app)  # type: ignore[method-assign]
    return app

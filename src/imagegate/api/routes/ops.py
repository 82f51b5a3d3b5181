"""Liveness, readiness and the model catalogue."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from imagegate.api.deps import ServicesDep
from imagegate.api.envelope import ok
from imagegate.api.routes.responses import errors
from imagegate.domain.pricing import format_usd
from imagegate.errors import NotReadyError
from imagegate.wire import Envelope, Health, ModelInfo, ModelList

router = APIRouter()


@router.get("/healthz", response_model=Envelope[Health], tags=["ops"])
async def healthz() -> Response:
    return ok(Health(status="ok"))


@router.get(
    "/readyz",
    response_model=Envelope[Health],
    responses=errors(503),
    tags=["ops"],
)
async def readyz(services: ServicesDep) -> Response:
    try:
        async with services.db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise NotReadyError(f"database not reachable: {type(exc).__name__}") from exc
    return ok(Health(status="ready"))


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus metrics of this process (its in-process worker's included)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v3/models", response_model=Envelope[list[ModelInfo]], tags=["models"])
async def list_models(services: ServicesDep) -> Response:
    return ok(
        ModelList(
            [
                ModelInfo(
                    route=spec.route,
                    tasks=list(spec.tasks),
                    backend=spec.backend,
                    parameters={
                        "aspect_ratio": [
                            "16:9",
                            "9:16",
                            "1:1",
                            "4:3",
                            "3:4",
                            "3:2",
                            "2:3",
                            "2:1",
                            "auto",
                        ],
                        "resolution": ["1k", "2k"],
                        "n": {"min": 1, "max": 9},
                        "output_format": ["png", "jpeg", "webp"],
                    },
                    price=format_usd(spec.price_micros).replace("$", ""),
                    price_2k=format_usd(spec.price_2k_micros).replace("$", ""),
                )
                for spec in services.registry.routes.values()
            ]
        )
    )

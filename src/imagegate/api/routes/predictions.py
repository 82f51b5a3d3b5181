"""Submit, read, wait, list and cancel predictions (SPEC §1-3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Response

from imagegate.api.deps import BaseUrlDep, ReaderDep, ServicesDep, SubmitterDep
from imagegate.api.envelope import ok
from imagegate.api.routes.responses import errors
from imagegate.wire import Envelope, GenerationRequest, ListQuery, Prediction, PredictionPage

router = APIRouter(prefix="/api/v3", tags=["predictions"])

PredictionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Wait = Annotated[
    float | None,
    Query(
        ge=0,
        le=3600,
        description="long-poll: hold the answer up to this many seconds "
        "until the job ends (capped by the server's max wait)",
    ),
]


async def _page(
    services: ServicesDep, principal: ReaderDep, base_url: str, query: ListQuery
) -> Response:
    jobs, total = await services.predictions.list_jobs(principal, query)
    items = [await services.predictions.to_wire(job, base_url) for job in jobs]
    return ok(PredictionPage(page=query.page, page_size=query.page_size, total=total, items=items))


@router.get(
    "/predictions",
    response_model=Envelope[PredictionPage],
    responses=errors(400, 401, 429),
    summary="The account's predictions, newest first",
)
async def list_predictions(
    services: ServicesDep,
    principal: ReaderDep,
    base_url: BaseUrlDep,
    query: Annotated[ListQuery, Query()],
) -> Response:
    return await _page(services, principal, base_url, query)


@router.post(
    "/predictions",
    response_model=Envelope[PredictionPage],
    responses=errors(400, 401, 413, 429),
    summary="The account's predictions, newest first (WaveSpeed's POST form)",
)
async def list_predictions_post(
    services: ServicesDep,
    principal: ReaderDep,
    base_url: BaseUrlDep,
    query: Annotated[ListQuery | None, Body()] = None,
) -> Response:
    return await _page(services, principal, base_url, query or ListQuery())


@router.get(
    "/predictions/{prediction_id}/result",
    response_model=Envelope[Prediction],
    responses=errors(400, 401, 404, 429),
    summary="A prediction, with its outputs once completed",
)
@router.get(
    "/predictions/{prediction_id}",
    response_model=Envelope[Prediction],
    responses=errors(400, 401, 404, 429),
    summary="A prediction (same as /result)",
)
async def get_prediction(
    services: ServicesDep,
    principal: ReaderDep,
    base_url: BaseUrlDep,
    prediction_id: PredictionId,
    wait: Wait = None,
) -> Response:
    if wait:
        job = await services.predictions.wait(principal, prediction_id, wait)
    else:
        job = await services.predictions.get(principal, prediction_id)
    return ok(await services.predictions.to_wire(job, base_url))


@router.post(
    "/predictions/{prediction_id}/cancel",
    response_model=Envelope[Prediction],
    responses=errors(400, 401, 404, 429),
    summary="Cancel a job that has not ended",
)
async def cancel_prediction(
    services: ServicesDep,
    principal: ReaderDep,
    base_url: BaseUrlDep,
    prediction_id: PredictionId,
) -> Response:
    job = await services.predictions.cancel(principal, prediction_id)
    return ok(await services.predictions.to_wire(job, base_url))


submit_router = APIRouter(prefix="/api/v3", tags=["predictions"])

Segment = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]


@submit_router.post(
    "/{owner}/{model}/{task}",
    response_model=Envelope[Prediction],
    responses=errors(400, 401, 403, 404, 413, 429),
    summary="Submit a job to a model route",
)
async def submit(
    services: ServicesDep,
    principal: SubmitterDep,
    base_url: BaseUrlDep,
    owner: Segment,
    model: Segment,
    task: Segment,
    body: GenerationRequest,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="the same key and body within 24 h return the same job",
        ),
    ] = None,
) -> Response:
    job = await services.predictions.submit(
        principal, f"{owner}/{model}", task, body, idempotency_key=idempotency_key
    )
    timed_out = body.enable_sync_mode and not job.is_terminal
    return ok(await services.predictions.to_wire(job, base_url, sync_timed_out=timed_out))

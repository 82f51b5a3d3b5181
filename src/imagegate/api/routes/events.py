"""Server-Sent Events of one prediction (SPEC §6): an event each time its status or the
model's step moves on, ending with the one where it has ended. Each event's ``id`` lets a
client that reconnects with ``Last-Event-ID`` get only what is newer; a comment every
15 s of quiet keeps proxies from closing the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from imagegate.api.deps import BaseUrlDep, ReaderDep, ServicesDep
from imagegate.api.routes.predictions import PredictionId
from imagegate.api.routes.responses import errors

router = APIRouter(prefix="/api/v3", tags=["predictions"])
KEEPALIVE_S = 15.0


@router.get(
    "/predictions/{prediction_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "text/event-stream: `event` is the status, `data` the prediction",
            # Each event, as OpenAPI tools read an event stream: its id, its name (the
            # job's status) and its data (the prediction as JSON text).
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "event": {
                                "type": "string",
                                "enum": ["created", "processing", "completed", "failed"],
                            },
                            "data": {"type": "string", "contentMediaType": "application/json"},
                        },
                        "required": ["id", "event", "data"],
                    }
                }
            },
        },
        **errors(400, 401, 404, 429),
    },
    summary="Live status and progress of a prediction, as Server-Sent Events",
)
async def prediction_events(
    services: ServicesDep,
    principal: ReaderDep,
    base_url: BaseUrlDep,
    prediction_id: PredictionId,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
) -> StreamingResponse:
    changes = services.predictions.changes(principal, prediction_id, last_event_id, KEEPALIVE_S)
    # The first change is read before the answer starts, so an unknown id is still a 404.
    # None: a resumed client has seen the job's end already; the stream is empty.
    first = await anext(changes, None)

    async def stream() -> AsyncIterator[bytes]:
        if first is None:
            return
        change = first
        while True:
            event_id, job = change
            if job is None:
                yield b": keep-alive\n\n"
            else:
                prediction = await services.predictions.to_wire(job, base_url)
                yield (
                    f"id: {event_id}\nevent: {job.status.value}\n"
                    f"data: {prediction.model_dump_json()}\n\n"
                ).encode()
            try:
                change = await anext(changes)
            except StopAsyncIteration:
                return

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

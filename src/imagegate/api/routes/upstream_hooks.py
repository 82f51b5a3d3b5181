"""Where providers call when an upstream job ends. The call only wakes the worker that
waits for the job; the worker then reads the job from the provider as it always does, so
nothing in the call's body is trusted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from imagegate.api.deps import ServicesDep
from imagegate.api.envelope import ok
from imagegate.api.routes.responses import errors
from imagegate.errors import NotFoundError
from imagegate.wire import Envelope, Health

router = APIRouter(prefix="/upstream/v1", tags=["upstream"])

Id = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Token = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


@router.post(
    "/hooks/{prediction_id}/{token}",
    response_model=Envelope[Health],
    responses=errors(400, 404),
    summary="A provider's call that an upstream job ended (the URL is imagegate's to give)",
)
async def upstream_hook(services: ServicesDep, prediction_id: Id, token: Token) -> Response:
    if not await services.execution.upstream_called(prediction_id, token):
        raise NotFoundError("not found")
    return ok(Health(status="received"))

"""Media upload (both forms clients use) and signed file downloads (SPEC §3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, UploadFile
from starlette.convertors import Convertor, register_url_convertor

from imagegate.api.deps import BaseUrlDep, ReaderDep, ServicesDep
from imagegate.api.envelope import ok
from imagegate.api.routes.responses import errors
from imagegate.services.clock import epoch
from imagegate.wire import Envelope, UploadResult, UploadTarget, UploadTicket, UploadTicketRequest

router = APIRouter(prefix="/api/v3/media", tags=["media"])


class _AnyPath(Convertor[str]):
    """Like Starlette's ``path``, but also across newlines, so that any key reaches the
    file route (and gets its 404) instead of falling through to the submit pattern."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", _AnyPath())

Expires = Annotated[int, Query(ge=0, le=2**40)]
Signature = Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[0-9a-f]+$")]


@router.post(
    "/upload/binary",
    response_model=Envelope[UploadResult],
    responses=errors(400, 401, 413, 429),
    summary="Upload an image (multipart field 'file'); the answer's download_url works in images",
)
async def upload_binary(
    services: ServicesDep, principal: ReaderDep, base_url: BaseUrlDep, file: UploadFile
) -> Response:
    data = await file.read()
    record = await services.media.upload(principal.account_id, file.filename or "upload", data)
    expires = services.media.expiry_from(epoch(record.created_at))
    return ok(
        UploadResult(
            filename=record.filename,
            size=record.size,
            download_url=services.media.file_url(base_url, record.blob_key, expires),
        )
    )


@router.post(
    "/uploads",
    response_model=Envelope[UploadTicket],
    responses=errors(400, 401, 413, 429),
    summary="Ask for a signed URL to PUT a file to",
)
async def create_upload(
    services: ServicesDep,
    principal: ReaderDep,
    base_url: BaseUrlDep,
    body: UploadTicketRequest,
) -> Response:
    record = await services.media.create_ticket(
        principal.account_id, body.filename, body.size, body.content_type
    )
    expires = services.media.expiry_from(epoch(record.created_at))
    return ok(
        UploadTicket(
            upload=UploadTarget(
                url=services.media.upload_url(base_url, record.id, expires),
                headers={"Content-Type": record.content_type},
            ),
            download_url=services.media.file_url(base_url, record.blob_key, expires),
        )
    )


@router.put(
    "/uploads/{upload_id}",
    response_model=Envelope[dict[str, str]],
    responses=errors(400, 404, 413),
    summary="The signed PUT target of an upload ticket (no API key: the URL is the permission)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "the image's bytes, at most the size the ticket was issued for",
        }
    },
)
async def put_upload(
    services: ServicesDep,
    request: Request,
    upload_id: Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$")],
    expires: Expires,
    sig: Signature,
) -> Response:
    data = await request.body()
    await services.media.complete_ticket(upload_id, expires, sig, data)
    return Response(
        content=b'{"code":200,"message":"success","data":{}}', media_type="application/json"
    )


@router.get(
    "/files/{key:anypath}",
    responses={
        200: {
            "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
            "description": "the file",
        },
        **errors(400, 404),
    },
    response_class=Response,
    summary="A stored file, through its signed, expiring link",
)
async def get_file(services: ServicesDep, key: str, expires: Expires, sig: Signature) -> Response:
    stored = await services.media.read_signed(key, expires, sig)
    return Response(
        content=stored.data,
        media_type=stored.content_type,
        headers={"Cache-Control": "private, max-age=3600"},
    )

"""Uploaded files, signed file URLs, and reference images turned into stored bytes."""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

import anyio

from imagegate.blobs.base import BlobStore
from imagegate.domain.ids import new_object_id
from imagegate.domain.images import (
    CONTENT_TYPE_BY_EXTENSION,
    EXTENSION_BY_CONTENT_TYPE,
    ImageInfo,
    inspect_image,
)
from imagegate.domain.signing import sign, verify
from imagegate.errors import BadRequestError, NotFoundError, PayloadTooLargeError
from imagegate.services.clock import Clock, epoch
from imagegate.services.safe_fetch import FetchError, FetchPolicy, UnsafeURLError, fetch_url
from imagegate.settings import Settings
from imagegate.store import uploads as repo
from imagegate.store.engine import Database
from imagegate.store.uploads import UploadRecord

FILES_PATH = "/api/v3/media/files/"
UPLOADS_PATH = "/api/v3/media/uploads/"
_DATA_URI = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Reference:
    key: str
    info: ImageInfo


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str


def _safe_filename(filename: str, extension: str) -> str:
    stem = _UNSAFE_NAME.sub("-", filename.rsplit("/", 1)[-1]).strip(".-")[:80] or "file"
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return f"{stem}.{extension}"


class MediaService:
    def __init__(
        self, settings: Settings, db: Database, blobs: BlobStore, secret: bytes, clock: Clock
    ) -> None:
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.secret = secret
        self.clock = clock
        self.fetch_policy = FetchPolicy(
            allow_private=settings.allow_private_urls,
            timeout_s=settings.fetch_timeout_s,
            max_bytes=settings.max_upload_bytes,
        )

    # -- signed URLs -------------------------------------------------------------------

    def expiry_from(self, start_epoch: float) -> int:
        return math.ceil(start_epoch) + self.settings.file_url_ttl_s

    def file_url(self, base_url: str, key: str, expires: int) -> str:
        sig = sign(self.secret, key, expires)
        return f"{base_url}{FILES_PATH}{quote(key)}?expires={expires}&sig={sig}"

    def upload_url(self, base_url: str, upload_id: str, expires: int) -> str:
        sig = sign(self.secret, f"upload:{upload_id}", expires)
        return f"{base_url}{UPLOADS_PATH}{upload_id}?expires={expires}&sig={sig}"

    def _now_epoch(self) -> float:
        return epoch(self.clock())

    async def read_signed(self, key: str, expires: int, sig: str) -> StoredFile:
        if not verify(self.secret, key, expires, sig, self._now_epoch()):
            raise NotFoundError("file not found, or its link has expired")
        try:
            data = await self.blobs.get(key)
        except KeyError as exc:
            raise NotFoundError("file not found, or its link has expired") from exc
        extension = key.rsplit(".", 1)[-1].lower()
        content_type = CONTENT_TYPE_BY_EXTENSION.get(extension, "application/octet-stream")
        return StoredFile(data=data, content_type=content_type)

    # -- uploads -----------------------------------------------------------------------

    async def _check(self, data: bytes, field: str) -> ImageInfo:
        try:
            return await anyio.to_thread.run_sync(
                inspect_image, data, self.settings.max_image_pixels
            )
        except BadRequestError as exc:
            raise BadRequestError(f"{field}: {exc.message}") from exc

    async def upload(self, account_id: str, filename: str, data: bytes) -> UploadRecord:
        if len(data) > self.settings.max_upload_bytes:
            raise PayloadTooLargeError(
                f"file: at most {self.settings.max_upload_bytes} bytes (got {len(data)})"
            )
        if not data:
            raise BadRequestError("file: must not be empty")
        info = await self._check(data, "file")
        upload_id = new_object_id()
        key = f"uploads/{upload_id}/{_safe_filename(filename, info.extension)}"
        await self.blobs.put(key, data)
        record = UploadRecord(
            id=upload_id,
            account_id=account_id,
            filename=filename[:255],
            content_type=info.content_type,
            size=len(data),
            blob_key=key,
            stored=1,
            created_at=self.clock(),
        )
        async with self.db.write() as conn:
            await repo.insert_upload(conn, record)
        return record

    async def create_ticket(
        self, account_id: str, filename: str, size: int, content_type: str
    ) -> UploadRecord:
        if size > self.settings.max_upload_bytes:
            raise PayloadTooLargeError(
                f"size: at most {self.settings.max_upload_bytes} bytes (got {size})"
            )
        media_type = content_type.split(";")[0].strip().lower()
        extension = EXTENSION_BY_CONTENT_TYPE.get(media_type)
        if extension is None:
            allowed = ", ".join(EXTENSION_BY_CONTENT_TYPE)
            raise BadRequestError(f"content_type: must be one of {allowed} (got {content_type!r})")
        upload_id = new_object_id()
        record = UploadRecord(
            id=upload_id,
            account_id=account_id,
            filename=filename,
            content_type=content_type,
            size=size,
            blob_key=f"uploads/{upload_id}/{_safe_filename(filename, extension)}",
            stored=0,
            created_at=self.clock(),
        )
        async with self.db.write() as conn:
            await repo.insert_upload(conn, record)
        return record

    async def complete_ticket(self, upload_id: str, expires: int, sig: str, data: bytes) -> None:
        if not verify(self.secret, f"upload:{upload_id}", expires, sig, self._now_epoch()):
            raise NotFoundError("upload not found, or its link has expired")
        async with self.db.read() as conn:
            record = await repo.get_upload(conn, upload_id)
        if record is None:
            raise NotFoundError("upload not found, or its link has expired")
        if record.stored:
            # Jobs read uploads in place, so a stored file must never change under them.
            raise BadRequestError("this upload has already been completed; ask for a new one")
        if len(data) > record.size:
            raise PayloadTooLargeError(
                f"body: the ticket was issued for {record.size} bytes (got {len(data)})"
            )
        await self._check(data, "body")
        await self.blobs.put(record.blob_key, data)
        async with self.db.write() as conn:
            await repo.mark_stored(conn, upload_id, len(data))

    # -- reference images --------------------------------------------------------------

    def _own_file_key(self, url: str) -> str | None:
        """The blob key if ``url`` is one of this server's signed file links."""
        parts = urlsplit(url)
        position = parts.path.find(FILES_PATH)
        if position < 0:
            return None
        key = parts.path[position + len(FILES_PATH) :]
        query = parse_qs(parts.query)
        try:
            expires = int(query["expires"][0])
            sig = query["sig"][0]
        except (KeyError, ValueError, IndexError):
            return None
        if not verify(self.secret, key, expires, sig, self._now_epoch()):
            return None
        return key

    async def _reference_bytes(self, entry: str, field: str) -> tuple[bytes, str | None]:
        """The entry's bytes, and its blob key when it is already in storage."""
        if _DATA_URI.match(entry):
            try:
                payload = entry.split(",", 1)[1]
                return base64.b64decode(payload, validate=True), None
            except (binascii.Error, ValueError) as exc:
                raise BadRequestError(f"{field}: data URI is not valid base64") from exc
        if entry.startswith("data:"):
            raise BadRequestError(f"{field}: data URIs must be data:image/...;base64,")
        key = self._own_file_key(entry)
        if key is not None:
            try:
                return await self.blobs.get(key), key
            except KeyError as exc:
                raise BadRequestError(
                    f"{field}: no file behind this link (was its upload completed?)"
                ) from exc
        if FILES_PATH in urlsplit(entry).path:
            raise BadRequestError(f"{field}: the link to an uploaded file is invalid or expired")
        try:
            return await fetch_url(entry, self.fetch_policy), None
        except (UnsafeURLError, FetchError) as exc:
            raise BadRequestError(f"{field}: {exc}") from exc

    async def store_references(self, job_id: str, entries: list[str]) -> list[Reference]:
        """Check every entry now (a 400 at submit names the bad one) and keep the bytes, so
        the job never depends on a URL that may change or vanish before it runs."""
        if not entries:
            return []
        references: list[Reference | None] = [None] * len(entries)
        written: list[str] = []

        async def one(index: int, entry: str) -> None:
            field = f"images[{index}]"
            data, key = await self._reference_bytes(entry, field)
            if len(data) > self.settings.max_upload_bytes:
                raise PayloadTooLargeError(
                    f"{field}: at most {self.settings.max_upload_bytes} bytes (got {len(data)})"
                )
            info = await self._check(data, field)
            if key is None:
                key = f"refs/{job_id}/{index}.{info.extension}"
                await self.blobs.put(key, data)
                written.append(key)
            references[index] = Reference(key=key, info=info)

        try:
            # The first failure cancels the rest; the error names its entry.
            async with anyio.create_task_group() as group:
                for index, entry in enumerate(entries):
                    group.start_soon(one, index, entry)
        except BaseException as exc:
            for key in written:
                await self.blobs.delete(key)
            errors = getattr(exc, "exceptions", None)
            if errors:
                raise errors[0] from None
            raise
        return [r for r in references if r is not None]

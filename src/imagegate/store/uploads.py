"""Uploaded media records. Functions take a connection and never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.store.tables import uploads


@dataclass(frozen=True)
class UploadRecord:
    id: str
    account_id: str
    filename: str
    content_type: str
    size: int
    blob_key: str
    stored: int
    created_at: datetime


async def insert_upload(conn: AsyncConnection, record: UploadRecord) -> None:
    await conn.execute(
        insert(uploads).values(
            id=record.id,
            account_id=record.account_id,
            filename=record.filename,
            content_type=record.content_type,
            size=record.size,
            blob_key=record.blob_key,
            stored=record.stored,
            created_at=record.created_at,
        )
    )


async def get_upload(conn: AsyncConnection, upload_id: str) -> UploadRecord | None:
    row = (await conn.execute(select(uploads).where(uploads.c.id == upload_id))).mappings().first()
    return UploadRecord(**row) if row else None


async def mark_stored(conn: AsyncConnection, upload_id: str, size: int) -> bool:
    result = await conn.execute(
        update(uploads).where(uploads.c.id == upload_id).values(stored=1, size=size)
    )
    return result.rowcount == 1

"""API keys: create (shown once), authenticate, list, revoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from imagegate.domain.ids import (
    hash_secret,
    new_api_key,
    new_object_id,
    parse_api_key,
    secret_matches,
)
from imagegate.errors import AuthenticationError, NotFoundError
from imagegate.services.clock import Clock
from imagegate.store import accounts as repo
from imagegate.store.accounts import KeyRecord
from imagegate.store.engine import Database

# last_used_at is advisory; writing it on every request would serialise reads on SQLite.
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    account_id: str
    key_id: str


@dataclass(frozen=True)
class NewKey:
    token: str
    record: KeyRecord


class AccountService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def create_key(self, name: str, account_id: str | None = None) -> NewKey:
        parts = new_api_key()
        now = self.clock()
        async with self.db.write() as conn:
            if account_id is None:
                account_id = new_object_id()
                await repo.insert_account(conn, account_id, name, now)
            elif not await repo.account_exists(conn, account_id):
                raise NotFoundError(f"account {account_id!r} not found")
            await repo.insert_key(
                conn,
                key_id=parts.key_id,
                account_id=account_id,
                name=name,
                secret_hash=hash_secret(parts.secret),
                now=now,
            )
            record = await repo.get_key(conn, parts.key_id)
        assert record is not None
        return NewKey(token=parts.token, record=record)

    async def authenticate(self, authorization: str | None) -> Principal:
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        parts = parse_api_key(token) if token else None
        if parts is None:
            raise AuthenticationError()
        async with self.db.read() as conn:
            record = await repo.get_key(conn, parts.key_id)
        if record is None or record.revoked_at is not None:
            raise AuthenticationError()
        if not secret_matches(parts.secret, record.secret_hash):
            raise AuthenticationError()
        now = self.clock()
        if record.last_used_at is None or now - record.last_used_at > _TOUCH_EVERY:
            async with self.db.write() as conn:
                await repo.touch_key(conn, record.id, now)
        return Principal(account_id=record.account_id, key_id=record.id)

    async def list_keys(self) -> list[KeyRecord]:
        async with self.db.read() as conn:
            return await repo.list_keys(conn)

    async def revoke(self, key_id: str) -> None:
        async with self.db.write() as conn:
            if not await repo.revoke_key(conn, key_id, self.clock()):
                existing = await repo.get_key(conn, key_id)
                if existing is None:
                    raise NotFoundError(f"key {key_id!r} not found")

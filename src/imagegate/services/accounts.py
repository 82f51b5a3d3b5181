"""API keys: create (shown once), authenticate, list, revoke."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
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


_CACHE_LIMIT = 10_000


class AccountService:
    def __init__(self, db: Database, clock: Clock, *, cache_s: float = 5.0) -> None:
        self.db = db
        self.clock = clock
        # Key records are read on every request; keeping them a few seconds takes the
        # database off the hot path. A revoke through this process applies at once; one
        # made through another process applies within ``cache_s``.
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, KeyRecord]] = {}

    async def _key(self, key_id: str) -> KeyRecord | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        async with self.db.read() as conn:
            record = await repo.get_key(conn, key_id)
        if record is not None and self.cache_s > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key_id] = (now, record)
        return record

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
        record = await self._key(parts.key_id)
        if record is None or record.revoked_at is not None:
            raise AuthenticationError()
        if not secret_matches(parts.secret, record.secret_hash):
            raise AuthenticationError()
        now = self.clock()
        if record.last_used_at is None or now - record.last_used_at > _TOUCH_EVERY:
            async with self.db.write() as conn:
                await repo.touch_key(conn, record.id, now)
            if record.id in self._cache:
                self._cache[record.id] = (
                    self._cache[record.id][0],
                    replace(record, last_used_at=now),
                )
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
        # After the commit, so a lookup racing the revoke cannot re-cache the old record.
        self._cache.pop(key_id, None)

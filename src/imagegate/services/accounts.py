"""Accounts and API keys: create (a key is shown once), authenticate, list, revoke, top up,
and the balance with its ledger."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from imagegate.domain.ids import (
    hash_secret,
    new_api_key,
    new_object_id,
    parse_api_key,
    secret_matches,
)
from imagegate.domain.rates import NO_LIMITS, Limits
from imagegate.errors import AuthenticationError, BadRequestError, NotFoundError
from imagegate.services.clock import Clock
from imagegate.store import accounts as repo
from imagegate.store import ledger

# Re-exported: the api layer names these records and never imports the store.
from imagegate.store.accounts import AccountRecord as AccountRecord
from imagegate.store.accounts import KeyRecord as KeyRecord
from imagegate.store.engine import Database

# last_used_at is advisory; writing it on every request would serialise reads on SQLite.
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    account_id: str
    key_id: str
    models: tuple[str, ...] | None = None  # route globs the key may use; None: all
    limits: Limits = NO_LIMITS
    account_limits: Limits = NO_LIMITS

    def may_use(self, route: str) -> bool:
        return self.models is None or any(fnmatchcase(route, glob) for glob in self.models)


@dataclass(frozen=True)
class Statement:
    """An account, its recent ledger, and the ledger's sum (equal to the balance)."""

    account: AccountRecord
    entries: list[ledger.Entry]
    ledger_total: int


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
        self._cache: dict[str, tuple[float, KeyRecord, Limits]] = {}

    async def _key(self, key_id: str) -> tuple[KeyRecord, Limits] | None:
        """The key and its account's limits."""
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1], cached[2]
        async with self.db.read() as conn:
            record = await repo.get_key(conn, key_id)
            account = None if record is None else await repo.get_account(conn, record.account_id)
        if record is None or account is None:
            return None
        if self.cache_s > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key_id] = (now, record, account.limits)
        return record, account.limits

    async def create_account(
        self, name: str, *, balance_micros: int | None = None, limits: Limits = NO_LIMITS
    ) -> AccountRecord:
        """A new account; with a balance it is metered, and the opening balance is its
        first ledger row (a top-up), so the balance equals the ledger from the start."""
        account_id = new_object_id()
        now = self.clock()
        async with self.db.write() as conn:
            opening = None if balance_micros is None else 0
            await repo.insert_account(
                conn, account_id, name, now, balance_micros=opening, limits=limits
            )
            if balance_micros:
                await ledger.credit(conn, account_id, balance_micros, ledger.Kind.TOPUP, now)
            record = await repo.get_account(conn, account_id)
        assert record is not None
        return record

    async def topup(self, account_id: str, amount_micros: int) -> int:
        """Add to a metered account's balance; the new balance."""
        async with self.db.write() as conn:
            if not await ledger.credit(
                conn, account_id, amount_micros, ledger.Kind.TOPUP, self.clock()
            ):
                if not await repo.account_exists(conn, account_id):
                    raise NotFoundError(f"account {account_id!r} not found")
                raise BadRequestError(
                    f"account {account_id!r} is unmetered: it has no balance to top up"
                )
            balance = await ledger.balance(conn, account_id)
        assert balance is not None
        return balance

    async def statement(self, account_id: str, entries: int = 20) -> Statement:
        # One transaction, so the balance and the ledger's sum are read at the same moment.
        async with self.db.write() as conn:
            account = await repo.get_account(conn, account_id)
            if account is None:
                raise NotFoundError(f"account {account_id!r} not found")
            recent = await ledger.recent(conn, account_id, entries)
            total = await ledger.total(conn, account_id)
        return Statement(account=account, entries=recent, ledger_total=total)

    async def create_key(
        self,
        name: str,
        account_id: str | None = None,
        *,
        models: Sequence[str] | None = None,
        expires_at: datetime | None = None,
        limits: Limits = NO_LIMITS,
    ) -> NewKey:
        """A key for ``account_id``, or for a new unmetered account of its own."""
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
                models=models,
                expires_at=expires_at,
                limits=limits,
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
        found = await self._key(parts.key_id)
        if found is None or found[0].revoked_at is not None:
            raise AuthenticationError()
        record, account_limits = found
        if not secret_matches(parts.secret, record.secret_hash):
            raise AuthenticationError()
        now = self.clock()
        if record.expires_at is not None and record.expires_at <= now:
            raise AuthenticationError("the API key has expired")
        if record.last_used_at is None or now - record.last_used_at > _TOUCH_EVERY:
            async with self.db.write() as conn:
                await repo.touch_key(conn, record.id, now)
            if (cached := self._cache.get(record.id)) is not None:
                self._cache[record.id] = (cached[0], replace(record, last_used_at=now), cached[2])
        return Principal(
            account_id=record.account_id,
            key_id=record.id,
            models=record.models,
            limits=record.limits,
            account_limits=account_limits,
        )

    async def list_keys(self, account_id: str | None = None) -> list[KeyRecord]:
        async with self.db.read() as conn:
            return await repo.list_keys(conn, account_id)

    async def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key (revoking it again changes nothing); the key as it now stands."""
        async with self.db.write() as conn:
            await repo.revoke_key(conn, key_id, self.clock())
            record = await repo.get_key(conn, key_id)
        if record is None:
            raise NotFoundError(f"key {key_id!r} not found")
        # After the commit, so a lookup racing the revoke cannot re-cache the old record.
        self._cache.pop(key_id, None)
        return record

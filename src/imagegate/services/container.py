"""Everything the API and the worker share, built once from ``Settings`` and closed once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from imagegate.blobs.local import LocalBlobStore
from imagegate.domain.prompt_policy import load_policy
from imagegate.domain.registry import Registry, load_registry
from imagegate.services.accounts import AccountService
from imagegate.services.clock import Clock, utc_now
from imagegate.services.execution import ExecutionService
from imagegate.services.media import MediaService
from imagegate.services.predictions import PredictionService
from imagegate.services.ratelimit import RateLimitService
from imagegate.services.signals import JobSignals
from imagegate.settings import Settings
from imagegate.store.engine import Database
from imagegate.store.migrate import upgrade
from imagegate.store.notifications import listen

log = logging.getLogger("imagegate")


@dataclass
class Services:
    settings: Settings
    db: Database
    registry: Registry
    signals: JobSignals
    accounts: AccountService
    media: MediaService
    predictions: PredictionService
    execution: ExecutionService
    ratelimit: RateLimitService


def signing_secret(settings: Settings) -> bytes:
    """The configured secret, or one generated on first start and kept under the data dir
    so that links stay valid across restarts."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path: Path = settings.data_dir / "secret_key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


@asynccontextmanager
async def open_services(
    settings: Settings, *, clock: Clock = utc_now, migrate: bool = True
) -> AsyncIterator[Services]:
    registry = load_registry(settings.models)
    policy = load_policy(settings.prompt_policy)
    db = Database(settings.resolved_database_url)
    try:
        if migrate:
            await upgrade(db.engine)
        blobs = LocalBlobStore(settings.outputs_dir)
        signals = JobSignals()
        media = MediaService(settings, db, blobs, signing_secret(settings), clock)
        services = Services(
            settings=settings,
            db=db,
            registry=registry,
            signals=signals,
            accounts=AccountService(db, clock, cache_s=settings.auth_cache_s),
            media=media,
            predictions=PredictionService(settings, db, registry, media, signals, clock, policy),
            execution=ExecutionService(settings, db, media, signals, clock),
            ratelimit=RateLimitService(settings),
        )
        # A plain task rather than a task group around the yield: a task group would wrap
        # every exception raised by the caller's body in an ExceptionGroup.
        listener = (
            asyncio.create_task(listen(settings.resolved_database_url, signals.deliver))
            if db.dialect == "postgresql"
            else None
        )
        try:
            yield services
        finally:
            await services.ratelimit.close()
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
    finally:
        await db.dispose()

"""Shared fixtures: a fresh database per test (SQLite always, PostgreSQL when
IMAGEGATE_TEST_POSTGRES_URL is set), Settings built directly, and an in-process app.

PostgreSQL isolation: the session migrates one template database; each test clones it
(``CREATE DATABASE … TEMPLATE``, fast) under a random name and drops it afterwards, so
parallel runs never see each other's rows.
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import hypothesis
import pytest
from PIL import Image
from sqlalchemy.engine import make_url

from imagegate.domain.jobs import Job
from imagegate.domain.requests import JobParams
from imagegate.settings import Settings
from imagegate.store import accounts
from imagegate.store.engine import Database
from imagegate.store.jobs import new_job
from imagegate.store.migrate import upgrade

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Hypothesis fails any example slower than 200 ms by default: a timing assertion, and on a
# 2-core machine under load any example can stall that long. Speed is measured in
# benchmarks/, not here.
hypothesis.settings.register_profile("imagegate", deadline=None)
hypothesis.settings.load_profile("imagegate")
POSTGRES_URL = os.environ.get("IMAGEGATE_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _admin_dsn() -> str:
    url = make_url(POSTGRES_URL)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_execute(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _async_url(database: str) -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated database that every PostgreSQL test clones."""
    if not POSTGRES_URL:
        pytest.skip("IMAGEGATE_TEST_POSTGRES_URL is not set; PostgreSQL tests need a server")
    from imagegate.store.engine import Database
    from imagegate.store.migrate import upgrade

    name = f"imagegate_tmpl_{secrets.token_hex(4)}"
    asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))

    async def migrate() -> None:
        db = Database(_async_url(name))
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()

    asyncio.run(migrate())
    yield name
    asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def fresh_database_url(
    request: pytest.FixtureRequest, directory: Path, prefix: str = "imagegate_test"
) -> Iterator[str]:
    """A new, migrated-on-demand database for ``request.param`` ("sqlite" or "postgres")."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'imagegate.db'}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"{prefix}_{secrets.token_hex(6)}"
    asyncio.run(_pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _async_url(name)
    asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database_url(request, tmp_path)


SAMPLE_TIME = datetime(2026, 1, 1, 12, 0, 0)
SAMPLE_PARAMS = JobParams(
    prompt="p", n=1, aspect_ratio="1:1", resolution="1k", seed=1, width=1024, height=1024
)


def sample_job(n: int, now: datetime = SAMPLE_TIME) -> Job:
    """Job number ``n`` of account "acct"; ids sort in the order of ``n``."""
    return new_job(
        job_id=f"{n:032x}",
        account_id="acct",
        route="a/b",
        task="text-to-image",
        params=SAMPLE_PARAMS,
        reference_keys=[],
        now=now,
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database holding the account "acct"."""
    database = Database(database_url)
    await upgrade(database.engine)
    async with database.write() as conn:
        await accounts.insert_account(conn, "acct", "test", SAMPLE_TIME)
    yield database
    await database.dispose()


# The shipped registry serves a real (small) model; API tests want the instant mock.
MOCK_REGISTRY = (
    '[models."kwaivgi/kling-image-o1"]\nbackend = "mock"\n'
    'tasks = ["text-to-image", "image-to-image"]\ndelay_ms = 0\n'
)
SLOW_REGISTRY = MOCK_REGISTRY.replace("delay_ms = 0", "delay_ms = 1500")


def mock_registry(directory: Path, text: str = MOCK_REGISTRY) -> Path:
    path = directory / "models.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def settings_override(request: pytest.FixtureRequest) -> str:
    """Parametrize indirectly with "slow" for a registry whose mock jobs take 1.5 s, or
    "no_worker" for an app without the in-process worker."""
    return getattr(request, "param", "")


@pytest.fixture
def settings(tmp_path: Path, database_url: str, settings_override: str) -> Settings:
    return Settings(
        models=mock_registry(
            tmp_path, SLOW_REGISTRY if settings_override == "slow" else MOCK_REGISTRY
        ),
        sync_mode_timeout=0.2 if settings_override == "slow" else 10,
        run_worker=settings_override != "no_worker",
        # In-process API tests run models in a thread: a process per test would cost a
        # second each. tests/worker and tests/e2e cover the process (default) path.
        worker_isolation="thread",
        data_dir=tmp_path / "data",
        database_url=database_url,
        allow_private_urls=True,
        poll_interval_s=0.05,
        secret_key="test-secret",
        # NudeNet costs 0.4 s to load and 0.1 s an image; tests of it build it themselves.
        image_checker="none",
    )


class Api:
    """An in-process app (lifespan running, in-process worker on) and a key for it."""

    def __init__(self, client: httpx.AsyncClient, key: str, services: object) -> None:
        self.client = client
        self.key = key
        self.services = services

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": self.key}

    async def other_account_auth(self) -> dict[str, str]:
        """Headers with a key of a second, unrelated account."""
        other = await self.services.accounts.create_key("other")  # type: ignore[attr-defined]
        return {"Authorization": other.token}

    async def submit(
        self,
        body: object,
        route: str = "kwaivgi/kling-image-o1",
        task: str = "text-to-image",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v3/{route}/{task}", json=body, headers={**self.auth, **(headers or {})}
        )

    async def result(self, prediction_id: str, wait: float = 10) -> dict[str, object]:
        response = await self.client.get(
            f"/api/v3/predictions/{prediction_id}/result",
            params={"wait": wait},
            headers=self.auth,
        )
        assert response.status_code == 200, response.text
        data: dict[str, object] = response.json()["data"]
        return data

    async def image(self, url: str) -> Image.Image:
        """An output file, decoded."""
        response = await self.client.get(url)
        assert response.status_code == 200, response.text
        with Image.open(io.BytesIO(response.content)) as image:
            return image.convert("RGB")


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    from imagegate.assembly import build_app

    app = build_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        new = await services.accounts.create_key("test")
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, new.token, services)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Stable Diffusion pipeline saved once per test process (torch is
    imported here, lazily, so tests that need no model never pay for it)."""
    from imagegate.testing.tiny_pipelines import save_tiny_sd

    return save_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight FLUX-style (DiT) pipeline, saved once per test process."""
    from imagegate.testing.tiny_pipelines import save_tiny_flux

    return save_tiny_flux(tmp_path_factory.mktemp("tiny-flux"))

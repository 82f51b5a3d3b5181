"""Two processes' worth of services on one database: a change made by one wakes the other's
waiters at once on PostgreSQL (NOTIFY), and within the poll interval on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from imagegate.services.accounts import Principal
from imagegate.services.container import Services, open_services
from imagegate.settings import Settings
from imagegate.wire import GenerationRequest
from tests.conftest import mock_registry

pytestmark = pytest.mark.anyio
POLL_S = 3.0


@pytest.fixture
async def pair(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Services, Services]]:
    async with AsyncExitStack() as stack:
        made = []
        for _ in range(2):
            settings = Settings(
                models=mock_registry(tmp_path),
                data_dir=tmp_path / "data",
                database_url=database_url,
                secret_key="s",
                poll_interval_s=POLL_S,
            )
            made.append(await stack.enter_async_context(open_services(settings)))
        await anyio.sleep(0.2)  # let the listeners connect
        yield made[0], made[1]


async def test_a_change_in_one_process_wakes_waiters_in_the_other(
    pair: tuple[Services, Services], database_url: str
) -> None:
    a, b = pair
    key = await a.accounts.create_key("t")
    principal = Principal(account_id=key.record.account_id, key_id=key.record.id)
    job = await a.predictions.submit(
        principal, "kwaivgi/kling-image-o1", "text-to-image", GenerationRequest(prompt="x")
    )
    elapsed: list[float] = []

    async def wait_in_b() -> None:
        started = anyio.current_time()
        ended = await b.predictions.wait(principal, job.id, 10)
        assert ended.status == "failed"
        elapsed.append(anyio.current_time() - started)

    async with anyio.create_task_group() as group:
        group.start_soon(wait_in_b)
        await anyio.sleep(0.3)
        await a.predictions.cancel(principal, job.id)
    if database_url.startswith("postgresql"):
        assert elapsed[0] < 1.5  # woken by NOTIFY, well before the 3 s poll
    else:
        assert elapsed[0] < POLL_S + 1.5  # the poll, as before

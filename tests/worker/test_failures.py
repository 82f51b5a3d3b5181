"""A job that fails in the backend fails with a clear error, and the worker carries on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from imagegate.domain.jobs import MAX_ATTEMPTS
from imagegate.services.clock import utc_now
from imagegate.settings import Settings
from tests.conftest import Api

pytestmark = pytest.mark.anyio

REGISTRY = """
[models."test/exploding"]
backend = "tests.worker.backends:ExplodingBackend"
tasks = ["text-to-image"]

[models."test/wrong-size"]
backend = "tests.worker.backends:WrongSizeBackend"
tasks = ["text-to-image"]

[models."test/dying"]
backend = "tests.worker.backends:DyingBackend"
tasks = ["text-to-image"]

[models."kwaivgi/kling-image-o1"]
backend = "mock"
tasks = ["text-to-image"]
"""


@pytest.fixture(params=["thread", "process"])
def settings(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Every failure here is checked with the model in a thread and in its own process."""
    path = tmp_path / "failing.toml"
    path.write_text(REGISTRY)
    settings.models = path
    settings.worker_isolation = request.param
    return settings


async def test_backend_error_fails_the_job_and_the_next_job_still_runs(api: Api) -> None:
    failed = await api.submit(
        {"prompt": "explode", "enable_sync_mode": True}, route="test/exploding"
    )
    data = failed.json()["data"]
    assert failed.status_code == 200
    assert data["status"] == "failed"
    assert data["error"] == "generation failed: CUDA out of memory (simulated)"
    assert data["outputs"] == []
    ok = await api.submit({"prompt": "fine", "enable_sync_mode": True}, route="test/exploding")
    assert ok.json()["data"]["status"] == "completed"


async def test_backend_returning_wrong_sizes_fails_the_job(api: Api) -> None:
    data = (
        await api.submit({"prompt": "x", "enable_sync_mode": True}, route="test/wrong-size")
    ).json()["data"]
    assert data["status"] == "failed"
    assert "expected 1 x 1360x768" in data["error"]


@pytest.mark.parametrize("settings_override", ["no_worker"], indirect=True)
async def test_a_job_whose_worker_keeps_dying_is_failed_not_retried_forever(api: Api) -> None:
    """Simulate MAX_ATTEMPTS worker deaths by claiming and abandoning the job with a clock
    that moves past each lease."""
    services = api.services
    job_id = (await api.submit({"prompt": "x"})).json()["data"]["id"]
    execution = services.execution  # type: ignore[attr-defined]
    now = utc_now()
    for attempt in range(MAX_ATTEMPTS):
        execution.clock = lambda t=now + timedelta(hours=attempt): t
        job = await execution.claim(f"doomed-{attempt}")
        assert job is not None and job.id == job_id and job.attempts == attempt + 1
    execution.clock = lambda: now + timedelta(hours=MAX_ATTEMPTS)
    assert await execution.claim("survivor") is None
    data = await api.result(job_id, wait=0)
    assert data["status"] == "failed"
    assert f"stopped {MAX_ATTEMPTS} times" in str(data["error"])


async def test_the_worker_survives_when_a_failure_cannot_be_recorded(api: Api) -> None:
    execution = api.services.execution  # type: ignore[attr-defined]
    real_fail = execution.fail
    calls = 0

    async def database_away(*args: object, **kwargs: object) -> bool:
        nonlocal calls
        calls += 1
        raise ConnectionError("database is away (simulated)")

    execution.fail = database_away
    await api.submit({"prompt": "explode"}, route="test/exploding")
    ok = await api.submit({"prompt": "fine", "enable_sync_mode": True}, route="test/exploding")
    execution.fail = real_fail
    assert calls == 1
    assert ok.json()["data"]["status"] == "completed"


@pytest.mark.parametrize("settings", ["process"], indirect=True)
async def test_a_model_process_that_dies_fails_only_its_job(api: Api) -> None:
    """An OOM kill or a segfault takes the model process down, not the server: the job
    fails saying so, and a fresh model process runs the next job."""
    died = await api.submit({"prompt": "die", "enable_sync_mode": True}, route="test/dying")
    data = died.json()["data"]
    assert died.status_code == 200
    assert data["status"] == "failed"
    assert data["error"] == (
        "generation failed: the model process was killed by signal 9 while running this job"
    )
    ok = await api.submit({"prompt": "fine", "enable_sync_mode": True}, route="test/dying")
    assert ok.json()["data"]["status"] == "completed"

"""The model process on its own: results, progress, cancellation, crashes, restarts."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from imagegate.backends.base import GenerationInput
from imagegate.domain.registry import RouteSpec
from imagegate.worker.model_process import ModelProcess, ModelProcessDied
from imagegate.worker.protocol import JobCancelled

pytestmark = pytest.mark.anyio

MOCK = RouteSpec(route="a/mock", backend="mock", tasks=("text-to-image",))
SLOW = RouteSpec(route="a/slow", backend="mock", tasks=("text-to-image",), delay_ms=4000)
DYING = RouteSpec(
    route="a/dying", backend="tests.worker.backends:DyingBackend", tasks=("text-to-image",)
)


def request(prompt: str = "x", n: int = 2) -> GenerationInput:
    return GenerationInput(task="text-to-image", prompt=prompt, n=n, width=64, height=48, seed=1)


@pytest.fixture
def model() -> Iterator[ModelProcess]:
    process = ModelProcess()
    yield process
    process.close()


async def test_images_and_progress_come_back_from_the_child(model: ModelProcess) -> None:
    steps: list[tuple[int, int]] = []
    images, inference_ms = await model.generate(
        "j1", MOCK, request(), lambda s, t: steps.append((s, t)), anyio.Event()
    )
    assert [image.size for image in images] == [(64, 48), (64, 48)]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert inference_ms >= 0


async def test_a_backend_error_is_reported_and_the_child_lives_on(model: ModelProcess) -> None:
    await model.generate("j0", DYING, request(), lambda s, t: None, anyio.Event())
    pid = model._process.pid if model._process else None
    with pytest.raises(RuntimeError, match=r"model\.safetensors is missing"):
        await model.generate("j1", DYING, request("oserror"), lambda s, t: None, anyio.Event())
    await model.generate("j2", DYING, request(), lambda s, t: None, anyio.Event())
    assert model._process is not None and model._process.pid == pid


async def test_a_killed_child_fails_the_job_and_a_new_one_runs_the_next(
    model: ModelProcess,
) -> None:
    with pytest.raises(ModelProcessDied, match="killed by signal 9"):
        await model.generate("j1", DYING, request("die"), lambda s, t: None, anyio.Event())
    images, _ = await model.generate("j2", DYING, request(), lambda s, t: None, anyio.Event())
    assert len(images) == 2


async def test_cancel_stops_the_child_at_its_next_step(model: ModelProcess) -> None:
    cancelled = anyio.Event()

    def progress(step: int, total: int) -> None:
        cancelled.set()

    with anyio.fail_after(3):  # the whole job would take 4 s
        with pytest.raises(JobCancelled):
            await model.generate("j1", SLOW, request(), progress, cancelled)
    images, _ = await model.generate("j2", MOCK, request(n=1), lambda s, t: None, anyio.Event())
    assert len(images) == 1


async def test_a_cancel_leaves_no_stale_answer_for_the_next_job(model: ModelProcess) -> None:
    """The supervisor's progress callback raises once a job is cancelled; the child's own
    "cancelled" answer must still be read, not left in the pipe for the next job."""
    cancelled = anyio.Event()

    def progress(step: int, total: int) -> None:
        if cancelled.is_set():
            raise JobCancelled()

    async def cancel_soon() -> None:
        await anyio.sleep(0.2)
        cancelled.set()

    async with anyio.create_task_group() as group:
        group.start_soon(cancel_soon)
        with anyio.fail_after(3), pytest.raises(JobCancelled):
            await model.generate("j1", SLOW, request(), progress, cancelled)
    images, _ = await model.generate("j2", MOCK, request(n=1), lambda s, t: None, anyio.Event())
    assert len(images) == 1

"""Where batches run (``worker.batcher.Models``): the model process and the in-thread
models pass the same contract; the model process also survives its own death."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from imagegate.backends.base import GenerationInput
from imagegate.domain.registry import RouteSpec
from imagegate.worker.batcher import Models
from imagegate.worker.in_thread import InThreadModels
from imagegate.worker.model_process import ModelProcess, ModelProcessDied
from imagegate.worker.protocol import JobCancelled

pytestmark = pytest.mark.anyio

MOCK = RouteSpec(route="a/mock", backend="mock", tasks=("text-to-image",))
SLOW = RouteSpec(route="a/slow", backend="mock", tasks=("text-to-image",), delay_ms=4000)
BRIEF = RouteSpec(route="a/brief", backend="mock", tasks=("text-to-image",), delay_ms=400)
DYING = RouteSpec(
    route="a/dying", backend="tests.worker.backends:DyingBackend", tasks=("text-to-image",)
)
UNLOADABLE = RouteSpec(
    route="a/broken", backend="tests.worker.backends:UnloadableBackend", tasks=("text-to-image",)
)


def request(prompt: str = "x", n: int = 2, seed: int = 1) -> GenerationInput:
    return GenerationInput(task="text-to-image", prompt=prompt, n=n, width=64, height=48, seed=seed)


def never() -> anyio.Event:
    return anyio.Event()


def ignore(step: int, total: int) -> None:
    pass


class ModelsContract:
    @pytest.fixture
    def models(self) -> Iterator[Models]:
        raise NotImplementedError

    async def test_each_request_of_a_batch_gets_its_own_images_and_progress_is_relayed(
        self, models: Models
    ) -> None:
        steps: list[tuple[int, int]] = []
        batches, inference_ms = await models.generate(
            MOCK,
            [request(n=2, seed=1), request(n=1, seed=9)],
            lambda s, t: steps.append((s, t)),
            never(),
        )
        assert [[image.size for image in images] for images in batches] == [
            [(64, 48), (64, 48)],
            [(64, 48)],
        ]
        assert batches[0][0].tobytes() != batches[1][0].tobytes()
        assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
        assert inference_ms >= 0

    async def test_a_backend_error_is_reported_and_the_next_batch_runs(
        self, models: Models
    ) -> None:
        with pytest.raises(Exception, match=r"model\.safetensors is missing"):
            await models.generate(DYING, [request("oserror")], ignore, never())
        batches, _ = await models.generate(DYING, [request()], ignore, never())
        assert len(batches[0]) == 2

    async def test_a_model_that_cannot_load_fails_with_its_reason(self, models: Models) -> None:
        with pytest.raises(Exception, match=r"a/broken: model_index\.json is missing"):
            await models.load(UNLOADABLE)
        with pytest.raises(Exception, match=r"model_index\.json is missing"):
            await models.generate(UNLOADABLE, [request()], ignore, never())

    async def test_stop_ends_the_batch_at_its_next_step(self, models: Models) -> None:
        stopped = anyio.Event()

        def progress(step: int, total: int) -> None:
            stopped.set()

        with anyio.fail_after(3), pytest.raises(JobCancelled):  # the batch would take 4 s
            await models.generate(SLOW, [request()], progress, stopped)
        batches, _ = await models.generate(MOCK, [request(n=1)], ignore, never())
        assert len(batches[0]) == 1

    async def test_a_stop_leaves_no_stale_answer_for_the_next_batch(self, models: Models) -> None:
        stopped = anyio.Event()

        async def stop_soon() -> None:
            await anyio.sleep(0.2)
            stopped.set()

        async with anyio.create_task_group() as group:
            group.start_soon(stop_soon)
            with anyio.fail_after(3), pytest.raises(JobCancelled):
                await models.generate(SLOW, [request()], ignore, stopped)
        batches, _ = await models.generate(MOCK, [request(n=1)], ignore, never())
        assert len(batches[0]) == 1


class TestModelProcess(ModelsContract):
    @pytest.fixture
    def models(self) -> Iterator[Models]:
        process = ModelProcess()
        yield process
        process.close()

    async def test_a_killed_child_fails_the_batch_and_a_new_one_runs_the_next(
        self, models: ModelProcess
    ) -> None:
        await models.load(DYING)
        pid = models._process.pid if models._process else None
        with pytest.raises(ModelProcessDied, match="killed by signal 9"):
            await models.generate(DYING, [request("die")], ignore, never())
        batches, _ = await models.generate(DYING, [request()], ignore, never())
        assert len(batches[0]) == 2
        assert models._process is not None and models._process.pid != pid

    @pytest.mark.parametrize("pause_s", [0.6, 0.0])
    async def test_a_batch_its_caller_gave_up_on_never_answers_for_the_next(
        self, models: ModelProcess, pause_s: float
    ) -> None:
        """The caller of a batch is cancelled (no Cancel is sent) and the next batch is sent
        after the abandoned one has ended (its Done and images wait in the pipe) or while it
        still runs (it stops at its next step: nobody wants it any more)."""
        with anyio.move_on_after(0.1):
            await models.generate(BRIEF, [request("abandoned", n=3, seed=5)], ignore, never())
        await anyio.sleep(pause_s)
        with anyio.fail_after(10):
            batches, _ = await models.generate(
                MOCK, [request("next", n=1, seed=6)], ignore, never()
            )
        alone, _ = await models.generate(MOCK, [request("next", n=1, seed=6)], ignore, never())
        assert [image.tobytes() for image in batches[0]] == [alone[0][0].tobytes()]


class TestInThreadModels(ModelsContract):
    @pytest.fixture
    def models(self) -> Iterator[Models]:
        models = InThreadModels()
        yield models
        models.close()

"""The batcher (``worker.batcher.Batcher``) in front of real in-thread models running the
mock backend: compatible waiting jobs share one model call of at most ``max_batch``
images, each job gets exactly its own images, the gathering window is paid only under
load, and cancels and failures reach exactly the jobs they concern.

``Recording`` is a spy, not a mock: the model really runs; it only notes each call."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import anyio
import pytest
from anyio.abc import TaskGroup
from PIL import Image

from imagegate.backends.base import GenerationInput, ProgressCallback
from imagegate.backends.mock import MockBackend
from imagegate.domain.registry import RouteSpec
from imagegate.worker.batcher import Batcher
from imagegate.worker.in_thread import InThreadModels
from imagegate.worker.protocol import JobCancelled

pytestmark = pytest.mark.anyio

TASKS = ("text-to-image", "image-to-image")
FAST = RouteSpec(route="a/fast", backend="mock", tasks=TASKS, max_batch=4)
OTHER = RouteSpec(route="a/other", backend="mock", tasks=TASKS, max_batch=4)
# Keeps the model busy while the jobs of a test pile up behind it.
BUSY = RouteSpec(route="a/busy", backend="mock", tasks=TASKS, max_batch=4, delay_ms=300)
STEADY = RouteSpec(route="a/steady", backend="mock", tasks=TASKS, max_batch=4, delay_ms=800)
SLOW = RouteSpec(route="a/slow", backend="mock", tasks=TASKS, max_batch=4, delay_ms=4000)
WARM = RouteSpec(route="a/warm", backend="mock", tasks=TASKS, max_batch=4)
EXPLODING = RouteSpec(
    route="a/exploding",
    backend="tests.worker.backends:ExplodingBackend",
    tasks=TASKS,
    max_batch=4,
)
UNLOADABLE = RouteSpec(
    route="a/broken", backend="tests.worker.backends:UnloadableBackend", tasks=TASKS
)


def request(
    prompt: str,
    n: int = 1,
    seed: int = 1,
    size: tuple[int, int] = (64, 48),
    task: str = "text-to-image",
) -> GenerationInput:
    width, height = size
    return GenerationInput(task=task, prompt=prompt, n=n, width=width, height=height, seed=seed)


def alone(spec: RouteSpec, req: GenerationInput) -> list[bytes]:
    """The pixels the mock backend gives this request rendered on its own."""
    [images] = MockBackend(replace(spec, delay_ms=0)).generate([req], lambda step, total: None)
    return [image.tobytes() for image in images]


@dataclass
class Call:
    spec: RouteSpec
    requests: list[GenerationInput]
    started: float
    # The routes the in-thread models held when the call began.
    loaded: list[str]
    ended: float | None = None
    error: BaseException | None = None

    @property
    def prompts(self) -> list[str]:
        return [req.prompt for req in self.requests]


class Recording:
    """A ``Models`` that delegates to real in-thread models and notes every call."""

    def __init__(self, inner: InThreadModels) -> None:
        self.inner = inner
        self.calls: list[Call] = []
        self.events: list[tuple[str, str]] = []
        self._news = anyio.Event()

    def _notify(self) -> None:
        self._news.set()
        self._news = anyio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until a call that starts or ends makes ``condition`` true."""
        while not condition():
            await self._news.wait()

    async def load(self, spec: RouteSpec) -> None:
        self.events.append(("load", spec.route))
        await self.inner.load(spec)

    async def generate(
        self,
        spec: RouteSpec,
        requests: Sequence[GenerationInput],
        progress: ProgressCallback,
        stop: anyio.Event,
    ) -> tuple[list[list[Image.Image]], int]:
        call = Call(spec, list(requests), time.monotonic(), self.inner.cache.routes)
        self.calls.append(call)
        self.events.append(("generate", spec.route))
        self._notify()
        try:
            return await self.inner.generate(spec, requests, progress, stop)
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            call.ended = time.monotonic()
            self._notify()

    def close(self) -> None:
        self.inner.close()

    def call_of(self, prompt: str) -> Call:
        [call] = [call for call in self.calls if prompt in call.prompts]
        return call

    def sent(self, prompt: str) -> bool:
        return any(prompt in call.prompts for call in self.calls)


@dataclass(eq=False)
class Job:
    """One job handed to the batcher, as a worker slot would."""

    spec: RouteSpec
    request: GenerationInput
    cancelled: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    images: list[Image.Image] | None = None
    error: Exception | None = None
    submitted: float = 0.0
    ended: float = 0.0

    async def run(self, batcher: Batcher) -> None:
        self.submitted = time.monotonic()
        try:
            self.images, _ = await batcher.generate(
                self.spec, self.request, lambda step, total: None, self.cancelled
            )
        except Exception as exc:
            self.error = exc
        finally:
            self.ended = time.monotonic()
            self.done.set()

    def pixels(self) -> list[bytes]:
        assert self.error is None, self.error
        assert self.images is not None
        return [image.tobytes() for image in self.images]


@pytest.fixture
def models() -> Iterator[InThreadModels]:
    models = InThreadModels()
    yield models
    models.close()


@pytest.fixture
def spy(models: InThreadModels) -> Recording:
    return Recording(models)


@asynccontextmanager
async def running(batcher: Batcher, warm: Sequence[RouteSpec] = ()) -> AsyncIterator[TaskGroup]:
    """The batcher's endless loop in a task group, stopped when the test is done; the
    group also runs the test's jobs. No test may take more than a few seconds."""
    with anyio.fail_after(8):
        async with anyio.create_task_group() as group:
            group.start_soon(batcher.run, warm)
            try:
                yield group
            finally:
                group.cancel_scope.cancel()


def start(group: TaskGroup, batcher: Batcher, *jobs: Job) -> None:
    for job in jobs:
        group.start_soon(job.run, batcher)


async def finish(*jobs: Job) -> None:
    for job in jobs:
        await job.done.wait()


async def occupy(group: TaskGroup, batcher: Batcher, spy: Recording) -> Job:
    """A lone job on ``BUSY`` that has reached the model: while it runs, the jobs that
    arrive wait and leave together as the next batch."""
    blocker = Job(BUSY, request("busy"))
    start(group, batcher, blocker)
    await spy.until(lambda: spy.sent("busy"))
    return blocker


async def make_crowded(group: TaskGroup, batcher: Batcher, spy: Recording) -> None:
    """Leave the batcher as it is under load: its last batch had company."""
    blocker = await occupy(group, batcher, spy)
    company = [Job(FAST, request(f"company-{i}")) for i in range(2)]
    start(group, batcher, *company)
    await finish(blocker, *company)
    assert spy.call_of("company-0").prompts == ["company-0", "company-1"]


async def test_jobs_waiting_on_a_busy_model_merge_into_calls_of_at_most_max_batch_images(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0)
    jobs = [
        Job(FAST, request("two", n=2)),
        Job(FAST, request("three", n=3)),  # 2 + 3 > 4: not with "two"
        Job(FAST, request("two-more", n=2)),  # 2 + 2 = 4: with "two"
    ]
    singles = [Job(FAST, request(f"single-{i}", n=1, size=(32, 32))) for i in range(5)]
    async with running(batcher) as group:
        blocker = await occupy(group, batcher, spy)
        start(group, batcher, *jobs, *singles)
        await finish(blocker, *jobs, *singles)

    assert [call.prompts for call in spy.calls] == [
        ["busy"],
        ["two", "two-more"],
        ["three"],
        ["single-0", "single-1", "single-2", "single-3"],
        ["single-4"],
    ]
    for call in spy.calls:
        assert sum(req.n for req in call.requests) <= call.spec.max_batch
    for job in jobs + singles:
        assert len(job.pixels()) == job.request.n


async def test_jobs_of_different_sizes_tasks_or_routes_never_share_a_call(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0)
    jobs = [
        Job(FAST, request("base")),
        Job(FAST, request("other-size", size=(64, 64))),
        Job(FAST, request("other-task", task="image-to-image")),
        Job(OTHER, request("other-route")),
        Job(FAST, request("base-too")),
    ]
    async with running(batcher) as group:
        blocker = await occupy(group, batcher, spy)
        start(group, batcher, *jobs)
        await finish(blocker, *jobs)

    assert [call.prompts for call in spy.calls] == [
        ["busy"],
        ["base", "base-too"],
        ["other-size"],
        ["other-task"],
        ["other-route"],
    ]
    assert spy.call_of("other-route").spec.route == "a/other"
    for call in spy.calls:
        assert len({(req.task, req.width, req.height) for req in call.requests}) == 1
    for job in jobs:
        assert job.pixels() == alone(job.spec, job.request)


async def test_each_job_of_a_merged_call_gets_exactly_its_own_images(spy: Recording) -> None:
    batcher = Batcher(spy, window_s=0)
    jobs = [
        Job(FAST, request("a cat", n=2, seed=7)),
        Job(FAST, request("a dog", n=1, seed=7)),
        Job(FAST, request("a cat", n=1, seed=8)),  # the same as image 1 of the first job
    ]
    async with running(batcher) as group:
        blocker = await occupy(group, batcher, spy)
        start(group, batcher, *jobs)
        await finish(blocker, *jobs)

    assert len(spy.calls) == 2 and spy.calls[1].requests == [job.request for job in jobs]
    for job in jobs:
        assert job.pixels() == alone(FAST, job.request)
    first, dog, cat = (job.pixels() for job in jobs)
    assert first[0] != dog[0] and first[0] != first[1]
    assert cat == [first[1]]  # seed 8 is image 1 of seed 7, batched or not


async def test_a_lone_job_on_an_idle_batcher_starts_without_waiting_for_the_window(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=5)
    async with running(batcher) as group:
        for prompt in ("first", "second"):  # a lone job after a lone job: still no wait
            job = Job(FAST, request(prompt))
            start(group, batcher, job)
            with anyio.fail_after(2):
                await finish(job)
            assert job.ended - job.submitted < 1
            assert job.pixels() == alone(FAST, job.request)
    assert [call.prompts for call in spy.calls] == [["first"], ["second"]]


async def test_under_load_a_batch_waits_the_window_to_gather_jobs_that_arrive_during_it(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0.3)
    staggered = [Job(FAST, request(f"late-{i}")) for i in range(3)]
    async with running(batcher) as group:
        await make_crowded(group, batcher, spy)
        for job in staggered:
            start(group, batcher, job)
            await anyio.sleep(0.05)
        await finish(*staggered)

    assert spy.calls[-1].prompts == ["late-0", "late-1", "late-2"]
    assert len(spy.calls) == 3  # busy, company, and the staggered three together
    assert spy.calls[-1].started - staggered[0].submitted >= 0.25
    for job in staggered:
        assert job.pixels() == alone(FAST, job.request)


async def test_after_a_quiet_spell_a_lone_job_starts_at_once_again(spy: Recording) -> None:
    batcher = Batcher(spy, window_s=0.05)
    async with running(batcher) as group:
        await make_crowded(group, batcher, spy)
        await anyio.sleep(0.05 * 12)  # longer than ten windows: the rush is over
        job = Job(FAST, request("lone"))
        start(group, batcher, job)
        await finish(job)
    assert spy.call_of("lone").started - job.submitted < 0.04


async def test_a_job_cancelled_while_waiting_leaves_at_once_and_never_reaches_the_model(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0)
    leaving, staying = Job(FAST, request("leaving")), Job(FAST, request("staying"))
    async with running(batcher) as group:
        blocker = await occupy(group, batcher, spy)
        start(group, batcher, leaving, staying)
        await anyio.sleep(0.05)
        cancelled_at = time.monotonic()
        leaving.cancelled.set()
        with anyio.fail_after(0.2):
            await finish(leaving)
        assert not blocker.done.is_set()  # it left before the model was free
        await finish(blocker, staying)

    assert isinstance(leaving.error, JobCancelled)
    assert leaving.ended - cancelled_at < 0.1
    assert not spy.sent("leaving")
    assert spy.call_of("staying").prompts == ["staying"]
    assert staying.pixels() == alone(FAST, staying.request)


async def test_a_job_cancelled_during_the_window_never_reaches_the_model(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0.3)
    leaving, staying = Job(FAST, request("leaving")), Job(FAST, request("staying"))
    async with running(batcher) as group:
        await make_crowded(group, batcher, spy)
        start(group, batcher, leaving, staying)
        await anyio.sleep(0.05)  # the pair is gathering company now
        leaving.cancelled.set()
        with anyio.fail_after(0.1):
            await finish(leaving)
        await finish(staying)

    assert isinstance(leaving.error, JobCancelled)
    assert not spy.sent("leaving")
    assert spy.calls[-1].prompts == ["staying"]
    assert staying.pixels() == alone(FAST, staying.request)


async def test_a_batch_gathered_after_the_window_runs_on_its_own_routes_model(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0.3)
    leaving = Job(EXPLODING, request("leaving"))
    other = Job(FAST, request("other"))
    async with running(batcher) as group:
        await make_crowded(group, batcher, spy)
        start(group, batcher, leaving, other)  # the window opens for "leaving"
        await anyio.sleep(0.05)
        leaving.cancelled.set()  # ...and "other" is what is left when it closes
        await finish(leaving, other)

    assert spy.call_of("other").spec.route == "a/fast"
    assert other.pixels() == alone(FAST, other.request)


async def test_a_job_whose_caller_is_cancelled_while_waiting_never_reaches_the_model(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0)
    abandoned = Job(FAST, request("abandoned"))
    async with running(batcher) as group:
        blocker = await occupy(group, batcher, spy)
        with anyio.move_on_after(0.05):  # a timeout or a shutdown of the caller
            await abandoned.run(batcher)
        await finish(blocker)
        await anyio.sleep(0.1)

    assert not spy.sent("abandoned")


async def test_a_job_cancelled_while_its_batch_runs_leaves_at_once_and_the_rest_complete(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0)
    jobs = [Job(STEADY, request(f"job-{i}", seed=i)) for i in range(3)]
    leaving = jobs[1]
    async with running(batcher) as group:
        blocker = await occupy(group, batcher, spy)
        start(group, batcher, *jobs)
        await finish(blocker)
        await spy.until(lambda: spy.sent("job-0"))
        await anyio.sleep(0.1)
        cancelled_at = time.monotonic()
        leaving.cancelled.set()
        with anyio.fail_after(0.2):
            await finish(leaving)
        await finish(*jobs)

    batch = spy.call_of("job-0")
    assert batch.prompts == ["job-0", "job-1", "job-2"]
    assert isinstance(leaving.error, JobCancelled)
    assert leaving.ended - cancelled_at < 0.1
    assert batch.ended is not None and leaving.ended < batch.ended - 0.3
    assert batch.error is None  # the model ran on for the others
    for job in (jobs[0], jobs[2]):
        assert job.pixels() == alone(STEADY, job.request)


async def test_when_every_job_of_a_running_batch_is_cancelled_the_model_call_stops_early(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0)
    jobs = [Job(SLOW, request(f"slow-{i}")) for i in range(2)]
    after = Job(FAST, request("after"))
    async with running(batcher) as group:
        blocker = await occupy(group, batcher, spy)
        start(group, batcher, *jobs)
        await finish(blocker)
        await spy.until(lambda: spy.sent("slow-0"))
        for job in jobs:
            job.cancelled.set()
        with anyio.fail_after(0.2):
            await finish(*jobs)
        with anyio.fail_after(2.5):  # of the 4 s the batch would take
            await spy.until(lambda: spy.call_of("slow-0").ended is not None)
        start(group, batcher, after)
        await finish(after)

    batch = spy.call_of("slow-0")
    assert batch.prompts == ["slow-0", "slow-1"]
    assert all(isinstance(job.error, JobCancelled) for job in jobs)
    assert isinstance(batch.error, JobCancelled)
    assert batch.ended is not None and batch.ended - batch.started < 2  # of 4 s
    assert after.pixels() == alone(FAST, after.request)


async def test_a_failing_model_call_fails_every_job_of_its_batch_and_the_next_batch_runs(
    spy: Recording,
) -> None:
    batcher = Batcher(spy, window_s=0)
    doomed = [Job(EXPLODING, request("explode")), Job(EXPLODING, request("innocent"))]
    after = Job(EXPLODING, request("after", n=2))
    async with running(batcher) as group:
        blocker = await occupy(group, batcher, spy)
        start(group, batcher, *doomed)
        await finish(blocker, *doomed)
        start(group, batcher, after)
        await finish(after)

    assert spy.call_of("explode").prompts == ["explode", "innocent"]
    for job in doomed:
        assert isinstance(job.error, RuntimeError)
        assert str(job.error) == "CUDA out of memory (simulated)"
    assert [len(image) for image in after.pixels()] == [64 * 48 * 3] * 2


async def test_warm_routes_are_loaded_before_the_first_job(
    spy: Recording, models: InThreadModels
) -> None:
    batcher = Batcher(spy, window_s=0)
    job = Job(FAST, request("first"))
    async with running(batcher, warm=[WARM]) as group:
        start(group, batcher, job)  # handed in before the warm-up is through
        await finish(job)

    assert spy.events == [("load", "a/warm"), ("generate", "a/fast")]
    assert spy.call_of("first").loaded == ["a/warm"]
    assert models.cache.routes == ["a/warm", "a/fast"]
    assert job.pixels() == alone(FAST, job.request)


async def test_a_warm_up_that_fails_is_logged_and_the_batcher_runs_on(
    spy: Recording, models: InThreadModels, caplog: pytest.LogCaptureFixture
) -> None:
    batcher = Batcher(spy, window_s=0)
    job = Job(FAST, request("first"))
    with caplog.at_level(logging.ERROR, logger="imagegate.worker"):
        async with running(batcher, warm=[UNLOADABLE, WARM]) as group:
            start(group, batcher, job)
            await finish(job)

    [record] = [r for r in caplog.records if r.name == "imagegate.worker"]
    assert record.getMessage() == "warming model a/broken failed; its first job will try again"
    assert record.exc_info is not None and "model_index.json is missing" in str(record.exc_info[1])
    assert spy.events[:2] == [("load", "a/broken"), ("load", "a/warm")]
    assert models.cache.routes == ["a/warm", "a/fast"]
    assert job.pixels() == alone(FAST, job.request)

"""The model process's malloc settings (worker/allocator.py): freed memory is reused without
new page faults, and unloading a model still hands its memory back to the system. Each
probe runs in a fresh process, as the model process does, so the settings start clean."""

from __future__ import annotations

import multiprocessing
import resource
from pathlib import Path
from typing import Any

import anyio
import pytest

from imagegate.backends.base import GenerationInput
from imagegate.domain.registry import RouteSpec
from imagegate.worker import allocator
from imagegate.worker.model_cache import ModelCache
from imagegate.worker.model_process import ModelProcess

pytestmark = pytest.mark.skipif(allocator._glibc() is None, reason="glibc's malloc only")

STAGED = RouteSpec(
    route="a/staged", backend="tests.worker.backends:StagedLoadBackend", tasks=("text-to-image",)
)
HEAP = RouteSpec(
    route="a/heap", backend="tests.worker.backends:HeapBackend", tasks=("text-to-image",)
)
MB = 1024**2
BUFFER = 64 * MB  # above glibc's default mmap threshold (at most 32 MiB)


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def _faults_of_a_buffer() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffer = bytearray(b"\1") * BUFFER  # every page written
    del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _probe(reuse: bool, answers: Any) -> None:
    applied = allocator.keep_freed_memory() if reuse else False
    faults = [_faults_of_a_buffer() for _ in range(4)]
    base = _rss()
    cache = ModelCache()
    cache.get(HEAP)
    loaded = _rss()
    cache.evict(HEAP.route)
    unloaded = _rss()
    cache.get(STAGED)
    answers.put(
        {
            "applied": applied,
            "faults": faults,
            "base": base,
            "loaded": loaded,
            "unloaded": unloaded,
            "staged": _rss(),
        }
    )


def probe(reuse: bool) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    process = context.Process(target=_probe, args=(reuse, answers))
    process.start()
    try:
        result: dict[str, Any] = answers.get(timeout=120)
    finally:
        process.join(timeout=30)
    return result


def test_by_default_each_large_buffer_is_faulted_in_afresh() -> None:
    result = probe(reuse=False)
    pages = BUFFER // resource.getpagesize()
    assert all(count > pages // 2 for count in result["faults"]), result


def test_with_reuse_a_freed_buffer_is_reused_without_page_faults() -> None:
    result = probe(reuse=True)
    pages = BUFFER // resource.getpagesize()
    assert result["applied"]
    assert result["faults"][0] > pages // 2, result  # the first time, the memory is new
    assert all(count < pages // 20 for count in result["faults"][1:]), result


def test_with_reuse_unloading_a_model_still_hands_its_memory_back() -> None:
    result = probe(reuse=True)
    # Memory a model used only while loading goes back too (on a GPU host: the weights'
    # CPU copies, before they were moved to the device).
    assert result["staged"] - result["unloaded"] < 32 * MB, result
    # (base holds the freed 64 MiB buffer, which the weights partly reuse)
    assert result["loaded"] - result["base"] > 150 * MB, result
    assert result["unloaded"] - result["base"] < 32 * MB, result


FAULTS = RouteSpec(
    route="a/faults", backend="tests.worker.backends:PageFaultsBackend", tasks=("text-to-image",)
)


@pytest.mark.anyio
@pytest.mark.parametrize("reuse", [True, False])
async def test_the_model_process_reuses_freed_memory_unless_told_not_to(reuse: bool) -> None:
    models = ModelProcess(reuse_memory=reuse)
    request = GenerationInput(task="text-to-image", prompt="x", n=1, width=8, height=8, seed=1)
    try:
        with pytest.raises(RuntimeError, match=r"page faults") as raised:
            await models.generate(FAULTS, [request], lambda s, t: None, anyio.Event())
    finally:
        models.close()
    first, second = (int(n) for n in str(raised.value).split()[-2:])
    pages = BUFFER // resource.getpagesize()
    assert first > pages // 2
    assert (second < pages // 20) if reuse else (second > pages // 2)

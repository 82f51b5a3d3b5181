"""Every backend keeps the same promises: n images of exactly the asked size per request
of a batch, the same pixels for the same seed, progress that counts up, and a stop at the
step where the progress callback raises."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imagegate.backends.base import Backend, GenerationInput
from imagegate.backends.mock import MockBackend
from imagegate.domain.registry import RouteSpec
from imagegate.worker.model_cache import load_backend
from imagegate.worker.protocol import JobCancelled
from tests.backends.conftest import diffusers_spec


def request(prompt: str = "a red horse", n: int = 1, seed: int = 7, **kw: Any) -> GenerationInput:
    fields: dict[str, Any] = {"width": 1360, "height": 768, **kw}
    return GenerationInput(task="text-to-image", prompt=prompt, n=n, seed=seed, **fields)


def pixels(image: Image.Image) -> np.ndarray[Any, Any]:
    return np.asarray(image, dtype=np.int16)


def ignore(step: int, total: int) -> None:
    pass


class BackendContract:
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        raise NotImplementedError

    def test_each_request_of_a_batch_gets_its_n_images_at_its_size(self, backend: Backend) -> None:
        batches = backend.generate([request(n=2), request("a cat", n=1, seed=9)], ignore)
        assert [[image.size for image in images] for images in batches] == [
            [(1360, 768), (1360, 768)],
            [(1360, 768)],
        ]
        assert all(image.mode == "RGB" for images in batches for image in images)

    def test_the_same_seed_gives_the_same_pixels_and_another_seed_other_pixels(
        self, backend: Backend
    ) -> None:
        first = backend.generate([request(seed=11)], ignore)[0][0]
        again = backend.generate([request(seed=11)], ignore)[0][0]
        other = backend.generate([request(seed=12)], ignore)[0][0]
        assert np.array_equal(pixels(first), pixels(again))
        assert not np.array_equal(pixels(first), pixels(other))

    def test_image_i_of_a_job_is_the_image_of_seed_plus_i(self, backend: Backend) -> None:
        three = backend.generate([request(n=3, seed=100)], ignore)[0]
        third_alone = backend.generate([request(n=1, seed=102)], ignore)[0][0]
        assert np.abs(pixels(three[2]) - pixels(third_alone)).max() <= 2
        assert not np.array_equal(pixels(three[0]), pixels(three[1]))

    def test_progress_counts_up_to_its_total(self, backend: Backend) -> None:
        steps: list[tuple[int, int]] = []
        backend.generate([request()], lambda step, total: steps.append((step, total)))
        assert steps
        total = steps[-1][1]
        assert steps == [(step, total) for step in range(1, total + 1)]

    def test_a_raising_progress_callback_stops_the_call_at_that_step(
        self, backend: Backend
    ) -> None:
        steps: list[int] = []

        def cancel_at_first(step: int, total: int) -> None:
            steps.append(step)
            raise JobCancelled()

        with pytest.raises(JobCancelled):
            backend.generate([request(n=2)], cancel_at_first)
        assert steps == [1]
        assert len(backend.generate([request()], ignore)[0]) == 1


class TestMock(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return MockBackend(RouteSpec(route="a/mock", backend="mock", tasks=("text-to-image",)))


@pytest.fixture(scope="module")
def sd_backend(tiny_sd: Path) -> Iterator[Backend]:
    backend: Backend = load_backend(diffusers_spec(tiny_sd, max_batch=4))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def flux_backend(tiny_flux: Path) -> Iterator[Backend]:
    backend: Backend = load_backend(diffusers_spec(tiny_flux, "tiny/flux", max_batch=4))
    yield backend
    backend.close()


class TestTinyStableDiffusion(BackendContract):
    @pytest.fixture
    def backend(self, sd_backend: Backend) -> Backend:
        return sd_backend


class TestTinyFlux(BackendContract):
    @pytest.fixture
    def backend(self, flux_backend: Backend) -> Backend:
        return flux_backend

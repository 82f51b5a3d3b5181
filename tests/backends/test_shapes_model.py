"""The shapes model that ships in the package, served by the shipped registry's entry:
what random weights cannot show, that each image follows its own prompt."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from imagegate.backends.base import Backend, GenerationInput
from imagegate.domain.registry import load_registry
from imagegate.training.judge import detect, judge
from imagegate.worker.model_cache import load_backend
from tests.backends.test_backend_contract import BackendContract

ROUTE = "kwaivgi/kling-image-o1"


@pytest.fixture(scope="module")
def shapes() -> Iterator[Backend]:
    spec = load_registry().routes[ROUTE]  # the shipped entry, as `imagegate serve` reads it
    backend: Backend = load_backend(spec)
    yield backend
    backend.close()


def ask(prompt: str, n: int = 1, seed: int = 1, size: int = 1024) -> GenerationInput:
    return GenerationInput(
        task="text-to-image", prompt=prompt, n=n, seed=seed, width=size, height=size
    )


def ignore(step: int, total: int) -> None:
    pass


def main_colour(image: Image.Image) -> str:
    """The palette colour the judge names for the largest object in the image."""
    return detect(image).objects[0].colour


class TestShapesModel(BackendContract):
    @pytest.fixture
    def backend(self, shapes: Backend) -> Backend:
        return shapes


def test_two_prompts_batched_together_each_get_their_own_colour(shapes: Backend) -> None:
    red, blue = shapes.generate(
        [ask("a red circle", n=4, seed=3), ask("a blue square", n=4, seed=4)], ignore
    )
    assert [image.size for image in [*red, *blue]] == [(1024, 1024)] * 8
    reds, blues = [main_colour(i) for i in red], [main_colour(i) for i in blue]
    # A small model misses now and then (blue drawn as cyan in 1 of 20 seeds, 2026-11-29),
    # so most images, not every one, carry their own prompt's colour; none carries the
    # other prompt's, which is what a batch that mixed its prompts up would show.
    assert reds.count("red") >= 3 and blues.count("blue") >= 3, (reds, blues)
    assert "blue" not in reds and "red" not in blues, (reds, blues)


def test_n_4_gives_four_different_images_that_all_follow_the_prompt(shapes: Backend) -> None:
    prompt = "a yellow star on a purple background"
    [images] = shapes.generate([ask(prompt, n=4, seed=20)], ignore)
    arrays = [np.asarray(image, dtype=np.int16) for image in images]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(arrays[i] - arrays[j]).mean() > 5, (i, j)
    assert [main_colour(image) for image in images] == ["yellow"] * 4
    assert all(judge(image, prompt).objects[0].colour for image in images)

"""The shapes model that ships in the package, served by the shipped registry's entry:
what random weights cannot show, that each image follows its own prompt."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from imagegate.backends.base import Backend, GenerationInput
from imagegate.domain.registry import load_registry
from imagegate.training.judge import judge
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


def follows(image: Image.Image, prompt: str) -> tuple[bool, bool]:
    """(colour right, shape right) for a one-object prompt."""
    [verdict] = judge(image, prompt).objects
    return bool(verdict.colour), verdict.shape


class TestShapesModel(BackendContract):
    @pytest.fixture
    def backend(self, shapes: Backend) -> Backend:
        return shapes


def test_two_prompts_batched_together_each_get_their_own_colour_and_shape(
    shapes: Backend,
) -> None:
    red, blue = shapes.generate([ask("a red circle", seed=3), ask("a blue square", seed=4)], ignore)
    assert [image.size for image in [*red, *blue]] == [(1024, 1024), (1024, 1024)]
    assert follows(red[0], "a red circle") == (True, True)
    assert follows(blue[0], "a blue square") == (True, True)
    # and crossed over, neither passes for the other
    assert follows(red[0], "a blue square") == (False, False)
    assert follows(blue[0], "a red circle") == (False, False)


def test_n_4_gives_four_different_images_that_all_follow_the_prompt(shapes: Backend) -> None:
    [images] = shapes.generate([ask("a yellow star on a purple background", n=4, seed=20)], ignore)
    arrays = [np.asarray(image, dtype=np.int16) for image in images]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(arrays[i] - arrays[j]).mean() > 5, (i, j)
    for image in images:
        verdict = judge(image, "a yellow star on a purple background")
        assert verdict.objects[0].colour and verdict.objects[0].shape
        assert verdict.background


def test_a_place_in_the_prompt_moves_the_object(shapes: Backend) -> None:
    [[left]], [[right]] = (
        shapes.generate([ask(f"a green circle on the {side}", seed=5)], ignore)
        for side in ("left", "right")
    )
    assert judge(left, "a green circle on the left").objects[0].position
    assert judge(right, "a green circle on the right").objects[0].position

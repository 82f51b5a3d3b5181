"""The tiny random-weight pipelines round-trip through diffusers' real loading path offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch

from imagegate.testing.tiny_pipelines import save_tiny_flux, save_tiny_sd

SAVERS: dict[str, Callable[[Path], Path]] = {"sd": save_tiny_sd, "flux": save_tiny_flux}
CLASSES = {
    "sd": ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"),
    "flux": ("FluxPipeline", "FluxImg2ImgPipeline"),
}
PROMPTS = ["a photo of a cat", "a red horse at night", "an astronaut", "a squirrel eating a burger"]


@pytest.fixture(scope="module", params=list(SAVERS))
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(kind, pipeline) saved once per module and loaded back with from_pretrained."""
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE, "the round trip must not be able to reach the hub"
    kind: str = request.param
    directory = SAVERS[kind](tmp_path_factory.mktemp(f"tiny-{kind}"))
    pipe = diffusers.AutoPipelineForText2Image.from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    return kind, pipe


def _generate(kind: str, pipe: Any, prompts: list[str], seeds: list[int], **kwargs: Any) -> Any:
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    if kind == "sd":
        kwargs.setdefault("guidance_scale", 0.0)
    return pipe(prompts, num_inference_steps=2, generator=generators, **kwargs).images


def test_round_trip_gives_real_pipelines_and_sizes(loaded: Any) -> None:
    kind, pipe = loaded
    assert type(pipe).__name__ == CLASSES[kind][0]
    assert pipe.vae_scale_factor == 8
    images = _generate(kind, pipe, PROMPTS[:1], [0], height=48, width=80, output_type="pil")
    assert [image.size for image in images] == [(80, 48)]
    pixels = np.asarray(images[0], dtype=np.float32)
    assert pixels.std() > 10, "random weights should still give a non-uniform image"

    img2img = diffusers.AutoPipelineForImage2Image.from_pipe(pipe)
    img2img.set_progress_bar_config(disable=True)
    assert type(img2img).__name__ == CLASSES[kind][1]
    # SD's img2img takes its size from the image; FLUX's needs it spelled out.
    size = {"height": 48, "width": 80} if kind == "flux" else {}
    edited = _generate(kind, img2img, PROMPTS[:1], [1], image=images[0], strength=0.5, **size)
    assert [image.size for image in edited] == [(80, 48)]


def test_per_image_seeds_are_deterministic_and_batch_independent(loaded: Any) -> None:
    kind, pipe = loaded
    batch = _generate(kind, pipe, PROMPTS, [10, 11, 12, 13], output_type="np", height=32, width=32)
    assert batch.shape == (4, 32, 32, 3)
    singles = [
        _generate(kind, pipe, [p], [s], output_type="np", height=32, width=32)[0]
        for p, s in zip(PROMPTS, [10, 11, 12, 13], strict=True)
    ]
    again = _generate(kind, pipe, PROMPTS[:1], [10], output_type="np", height=32, width=32)[0]
    other_seed = _generate(kind, pipe, PROMPTS[:1], [99], output_type="np", height=32, width=32)[0]

    assert np.array_equal(again, singles[0])
    assert np.abs(other_seed - singles[0]).mean() * 255 > 5
    for i, single in enumerate(singles):
        assert np.abs(batch[i] - single).max() * 255 < 1, f"image {i} depends on its batch"

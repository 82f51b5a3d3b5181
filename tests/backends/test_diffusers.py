"""The diffusers backend on tiny real pipelines: sizes, batching, references, failures,
and the memory the loaded models hold."""

from __future__ import annotations

import gc
import json
import shutil
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from imagegate.backends.base import BackendOutOfMemory, GenerationInput
from imagegate.backends.diffusers import DiffusersBackend
from imagegate.backends.diffusers.loading import ModelLoadError
from imagegate.backends.diffusers.rendering import BadOutputError
from imagegate.domain.sizes import output_size
from imagegate.worker.model_cache import ModelCache
from tests.backends.conftest import diffusers_spec

ASPECTS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "2:1")


def request(
    prompt: str = "a red horse", n: int = 1, seed: int = 7, size: tuple[int, int] = (1360, 768)
) -> GenerationInput:
    return GenerationInput(
        task="text-to-image", prompt=prompt, n=n, seed=seed, width=size[0], height=size[1]
    )


def pixels(image: Image.Image) -> np.ndarray[Any, Any]:
    return np.asarray(image, dtype=np.int16)


def ignore(step: int, total: int) -> None:
    pass


@pytest.fixture(scope="module")
def sd(tiny_sd: Path) -> Iterator[DiffusersBackend]:
    backend = DiffusersBackend(diffusers_spec(tiny_sd, max_batch=4))
    yield backend
    backend.close()


@pytest.mark.parametrize("resolution", ["1k", "2k"])
@pytest.mark.parametrize("aspect", ASPECTS)
def test_every_aspect_and_resolution_is_delivered_at_the_contracts_size(
    sd: DiffusersBackend, aspect: str, resolution: str
) -> None:
    size = output_size(aspect, resolution, None)
    [[image]] = sd.generate([request(size=size)], ignore)
    assert image.size == size


def test_render_pixels_renders_1k_and_2k_at_the_same_size(tiny_sd: Path) -> None:
    backend = DiffusersBackend(diffusers_spec(tiny_sd, render_scale=1.0, render_pixels=4096))
    [[small]] = backend.generate([request(size=output_size("16:9", "1k", None))], ignore)
    [[large]] = backend.generate([request(size=output_size("16:9", "2k", None))], ignore)
    backend.close()
    assert (small.size, large.size) == ((1360, 768), (2720, 1536))
    # the same render, upscaled twice as far: scaled back down it matches the 1k image
    shrunk = large.resize(small.size, Image.Resampling.LANCZOS)
    assert np.abs(pixels(shrunk) - pixels(small)).mean() < 2


def test_cpu_threads_sets_torchs_threads_for_a_model_on_the_cpu(tiny_sd: Path) -> None:
    before = torch.get_num_threads()
    try:
        backend = DiffusersBackend(diffusers_spec(tiny_sd, cpu_threads=before + 1))
        assert torch.get_num_threads() == before + 1
        backend.close()
    finally:
        torch.set_num_threads(before)


def test_a_batch_gives_each_image_what_it_gets_alone(sd: DiffusersBackend) -> None:
    jobs = [request("a cat", n=2, seed=1), request("a dog at night", n=1, seed=50)]
    together = sd.generate(jobs, ignore)
    alone = [sd.generate([job], ignore)[0] for job in jobs]
    differences = [
        np.abs(pixels(a) - pixels(b)).max()
        for batch, single in zip(together, alone, strict=True)
        for a, b in zip(batch, single, strict=True)
    ]
    assert max(differences) <= 3, differences
    assert not np.array_equal(pixels(together[0][0]), pixels(together[1][0]))


def test_n_above_max_batch_is_split_into_calls_and_progress_spans_them(tiny_sd: Path) -> None:
    backend = DiffusersBackend(diffusers_spec(tiny_sd, max_batch=2))
    steps: list[tuple[int, int]] = []
    [images] = backend.generate([request(n=5)], lambda s, t: steps.append((s, t)))
    assert len(images) == 5
    # three calls (2 + 2 + 1 images) of two steps each
    assert steps == [(step, 6) for step in range(1, 7)]
    backend.close()


def test_a_negative_prompt_is_used_where_the_model_takes_one(tiny_sd: Path) -> None:
    backend = DiffusersBackend(diffusers_spec(tiny_sd, guidance_scale=3.0))
    plain = request(seed=3)
    negative = GenerationInput(**{**plain.__dict__, "negative_prompt": "blurry, dark"})
    [[a]], [[b]] = backend.generate([plain], ignore), backend.generate([negative], ignore)
    assert not np.array_equal(pixels(a), pixels(b))
    backend.close()


@pytest.mark.parametrize("kind", ["sd", "flux"])
def test_references_run_image_to_image_on_the_same_weights(
    kind: str, tiny_sd: Path, tiny_flux: Path
) -> None:
    source = tiny_sd if kind == "sd" else tiny_flux
    # 4 steps at strength 0.6 start from the reference, not pure noise (2 would not).
    backend = DiffusersBackend(diffusers_spec(source, f"tiny/{kind}", steps=4))
    red, blue = Image.new("RGB", (300, 200), "red"), Image.new("RGB", (300, 200), "blue")

    def with_reference(reference: Image.Image) -> Image.Image:
        job = GenerationInput(
            task="image-to-image",
            prompt="a cat",
            n=1,
            seed=5,
            width=1152,
            height=864,
            references=[reference],
        )
        return backend.generate([job], ignore)[0][0]

    from_red, from_blue = with_reference(red), with_reference(blue)
    assert from_red.size == (1152, 864)
    # The reference shows through: a red start stays redder than a blue one.
    assert pixels(from_red)[..., 0].mean() > pixels(from_blue)[..., 0].mean()
    text, image = backend._text, backend._image
    assert image is not text and type(image).__name__.endswith("Img2ImgPipeline")
    denoiser = "unet" if kind == "sd" else "transformer"
    assert getattr(image, denoiser) is getattr(text, denoiser)  # no second copy
    backend.close()


def faulty(tiny_sd: Path) -> DiffusersBackend:
    return DiffusersBackend(
        diffusers_spec(tiny_sd, max_batch=2, pipeline="tests.backends.pipelines:FaultyPipeline")
    )


def test_out_of_memory_fails_the_call_with_what_to_change_and_the_next_call_works(
    tiny_sd: Path,
) -> None:
    backend = faulty(tiny_sd)
    with pytest.raises(
        BackendOutOfMemory,
        match=r"out of memory on cpu rendering 2 image\(s\) at 80x48; lower this route's max_batch",
    ):
        backend.generate([request("oom", n=2)], ignore)
    assert len(backend.generate([request(n=2)], ignore)[0]) == 2
    backend.close()


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("nan", r"NaN pixels for image 1 of the job \(seed 7\).*float32"),
        ("black", r"all-black image for image 1 of the job \(seed 7\)"),
    ],
)
def test_nan_and_black_images_fail_the_call_saying_so(
    tiny_sd: Path, prompt: str, message: str
) -> None:
    backend = faulty(tiny_sd)
    with pytest.raises(BadOutputError, match=message):
        backend.generate([request(prompt)], ignore)
    backend.close()


def test_a_broken_model_directory_names_the_route_and_the_source(
    tiny_sd: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(ModelLoadError, match=rf"could not load model 'tiny/sd' from '{broken}'"):
        DiffusersBackend(diffusers_spec(broken))
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "NoSuchPipeline"}))
    with pytest.raises(ModelLoadError, match="could not load model 'tiny/sd'"):
        DiffusersBackend(diffusers_spec(broken))


def test_an_unknown_pipeline_class_is_named(tiny_sd: Path) -> None:
    with pytest.raises(ModelLoadError, match="diffusers has no pipeline class 'NoSuchPipeline'"):
        DiffusersBackend(diffusers_spec(tiny_sd, pipeline="NoSuchPipeline"))


def test_a_hub_source_that_is_not_downloaded_says_how_to_get_it() -> None:
    with pytest.raises(ModelLoadError, match=r"imagegate models pull tiny/sd"):
        DiffusersBackend(diffusers_spec("nobody-here/no-such-model"))


def test_the_lru_unloads_the_oldest_model_past_the_budget_and_frees_it(tiny_sd: Path) -> None:
    one = DiffusersBackend(diffusers_spec(tiny_sd))
    size = one.memory_bytes()
    one.close()
    assert size > 0
    cache = ModelCache(budget_bytes=int(size * 1.5))
    first = cache.get(diffusers_spec(tiny_sd, "tiny/a"))
    unet = weakref.ref(first._text.unet)
    del first
    cache.get(diffusers_spec(tiny_sd, "tiny/b"))
    assert cache.routes == ["tiny/b"]
    gc.collect()
    assert unet() is None, "the evicted model's weights are still referenced"
    assert cache.held_bytes() == size
    cache.get(diffusers_spec(tiny_sd, "tiny/a"))
    assert cache.routes == ["tiny/a"]
    cache.clear()
    assert cache.routes == [] and cache.held_bytes() == 0


def test_without_a_budget_models_stay_loaded_and_recent_use_moves_them_last(
    tiny_sd: Path,
) -> None:
    cache = ModelCache()
    for route in ("tiny/a", "tiny/b", "tiny/a"):
        cache.get(diffusers_spec(tiny_sd, route))
    assert cache.routes == ["tiny/b", "tiny/a"]
    cache.clear()


def test_out_of_memory_unloads_every_other_model(tiny_sd: Path) -> None:
    cache = ModelCache()
    cache.get(diffusers_spec(tiny_sd, "tiny/other"))
    spec = diffusers_spec(
        tiny_sd, "tiny/faulty", pipeline="tests.backends.pipelines:FaultyPipeline"
    )
    with pytest.raises(BackendOutOfMemory):
        cache.generate(spec, [request("oom")], ignore)
    assert cache.routes == ["tiny/faulty"]
    cache.clear()


def test_vae_tiling_turns_on_above_its_threshold_and_channels_last_keeps_the_pixels(
    tiny_sd: Path, sd: DiffusersBackend
) -> None:
    backend = DiffusersBackend(
        diffusers_spec(tiny_sd, tiling_above_pixels=80 * 48 + 1, channels_last=True)
    )
    [[small]] = backend.generate([request(seed=4)], ignore)  # 80x48 rendered: not tiled
    assert not backend._text.vae.use_tiling
    [[large]] = backend.generate([request(seed=4, size=(2720, 1536))], ignore)  # 176x96
    assert backend._text.vae.use_tiling and large.size == (2720, 1536)
    [[plain]] = sd.generate([request(seed=4)], ignore)
    assert np.abs(pixels(small) - pixels(plain)).max() <= 2
    backend.close()

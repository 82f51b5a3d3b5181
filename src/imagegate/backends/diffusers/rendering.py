"""One batch of requests through a loaded pipeline: render sizes, per-image seeds, the
step callback, and the checks and upscaling of what comes out."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from imagegate.backends.base import BackendOutOfMemory, GenerationInput, ProgressCallback
from imagegate.domain.diffusers_options import DiffusersOptions


class BadOutputError(RuntimeError):
    pass


@dataclass(frozen=True)
class Row:
    """One image to make: the request it belongs to and its index within that request."""

    request: GenerationInput
    index: int


def render_size(width: int, height: int, scale: float, multiple: int) -> tuple[int, int]:
    def side(length: int) -> int:
        return max(multiple, round(length * scale / multiple) * multiple)

    return side(width), side(height)


def size_multiple(pipe: Any) -> int:
    # Latents are the image over vae_scale_factor; DiT pipelines (FLUX) pack 2x2 patches.
    return int(getattr(pipe, "vae_scale_factor", 8)) * 2


def accepts(pipe: Any, name: str) -> bool:
    return name in inspect.signature(pipe.__call__).parameters


def render(
    pipe: Any,
    options: DiffusersOptions,
    requests: Sequence[GenerationInput],
    progress: ProgressCallback,
    *,
    max_batch: int,
    device: torch.device,
) -> list[list[Image.Image]]:
    first = requests[0]
    width, height = render_size(
        first.width,
        first.height,
        options.render_fraction(first.width, first.height),
        size_multiple(pipe),
    )
    rows = [Row(request, index) for request in requests for index in range(request.n)]
    chunks = [rows[start : start + max_batch] for start in range(0, len(rows), max_batch)]
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        tiled = options.vae_tiling == "on" or (
            options.vae_tiling == "auto" and width * height > options.tiling_above_pixels
        )
        vae.enable_tiling() if tiled else vae.disable_tiling()

    images: dict[int, list[Image.Image]] = {id(request): [] for request in requests}
    for number, chunk in enumerate(chunks):
        on_step = _step_reporter(progress, number, len(chunks), options.steps)
        arrays = _call(pipe, options, chunk, width, height, on_step, device)
        for row, array in zip(chunk, arrays, strict=True):
            images[id(row.request)].append(_to_image(array, row, first.width, first.height))
    return [images[id(request)] for request in requests]


def _step_reporter(progress: ProgressCallback, number: int, calls: int, steps: int) -> Any:
    """diffusers' step callback, counting steps across the calls of a split batch."""

    def on_step(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> Any:
        # Image-to-image runs fewer steps than asked (strength); the pipeline knows how many.
        per_call = int(getattr(pipe, "num_timesteps", 0) or steps)
        progress(number * per_call + step + 1, calls * per_call)
        return tensors

    return on_step


def _call(
    pipe: Any,
    options: DiffusersOptions,
    chunk: Sequence[Row],
    width: int,
    height: int,
    on_step: Any,
    device: torch.device,
) -> np.ndarray[Any, Any]:
    kwargs: dict[str, Any] = {
        "prompt": [row.request.prompt for row in chunk],
        "num_inference_steps": options.steps,
        "width": width,
        "height": height,
        # CPU generators give the same noise on every device; one per image makes an
        # image's pixels independent of what it is batched with.
        "generator": [
            torch.Generator("cpu").manual_seed(row.request.image_seed(row.index)) for row in chunk
        ],
        "output_type": "np",
    }
    if options.guidance_scale is not None:
        kwargs["guidance_scale"] = options.guidance_scale
    if any(row.request.negative_prompt for row in chunk) and accepts(pipe, "negative_prompt"):
        kwargs["negative_prompt"] = [row.request.negative_prompt or "" for row in chunk]
    if chunk[0].request.references:
        kwargs["image"] = [
            row.request.references[0]
            .convert("RGB")
            .resize((width, height), Image.Resampling.LANCZOS)
            for row in chunk
        ]
        kwargs["strength"] = options.strength
    if accepts(pipe, "callback_on_step_end"):
        kwargs["callback_on_step_end"] = on_step
    try:
        result = pipe(**kwargs)
    except torch.OutOfMemoryError as exc:
        raise BackendOutOfMemory(
            f"out of memory on {device} rendering {len(chunk)} image(s) at {width}x{height}; "
            "lower this route's max_batch, render_scale or render_pixels "
            f"({str(exc).splitlines()[0]})"
        ) from None
    return np.asarray(result.images)


def _to_image(array: np.ndarray[Any, Any], row: Row, width: int, height: int) -> Image.Image:
    where = f"image {row.index + 1} of the job (seed {row.request.image_seed(row.index)})"
    # In place, in one buffer: the same pixels as clip, scale and round, in half the time
    # of a pass per step (it is on the path of every image).
    scaled = np.multiply(array, 255, dtype=np.float32)
    np.clip(scaled, 0, 255, out=scaled)
    np.rint(scaled, out=scaled)
    brightest = scaled.max()  # NaN wherever any pixel is NaN
    if np.isnan(brightest):
        raise BadOutputError(
            f"the model produced NaN pixels for {where}: a numerical overflow; "
            'try dtype = "float32" or "bfloat16" for this route'
        )
    if brightest <= 1:
        raise BadOutputError(f"the model produced an all-black image for {where}")
    image = Image.fromarray(scaled.astype(np.uint8)[..., :3])
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image

"""A tiny diffusers pipeline on its own, loaded and called the plain way: what the scripts
that time the model alone (cpu_neighbour.py, malloc_reuse.py) call in their loops."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

MODELS = ("tiny-flux", "tiny-sd")
PROMPT = "a red horse"


def save(model: str, directory: Path) -> Path:
    """The model with random weights, saved under ``directory`` (nothing from the hub)."""
    from imagegate.testing import tiny_pipelines

    if model == "tiny-flux":
        return tiny_pipelines.save_tiny_flux(directory)
    return tiny_pipelines.save_tiny_sd(directory)


def load(model: str, path: Path) -> Any:
    from diffusers import FluxPipeline, StableDiffusionPipeline

    pipeline: Any = FluxPipeline if model == "tiny-flux" else StableDiffusionPipeline
    pipe = pipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def timed_call(pipe: Any, side: int, seed: int) -> float:
    """Seconds for one image of ``side``², 4 steps, no guidance, a CPU generator."""
    import torch

    started = time.perf_counter()
    pipe(
        prompt=[PROMPT],
        num_inference_steps=4,
        width=side,
        height=side,
        guidance_scale=0.0,
        generator=[torch.Generator("cpu").manual_seed(seed)],
        output_type="pil",
    )
    return time.perf_counter() - started

"""A real Stable Diffusion pipeline class that fails on request, named in a registry
entry's ``pipeline`` option exactly as a user's own pipeline class would be."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.pipeline_output import StableDiffusionPipelineOutput
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
    StableDiffusionPipeline,
)


class FaultyPipeline(StableDiffusionPipeline):
    """Prompts containing "oom" run out of memory part-way, as a too-large batch does on a
    GPU; "nan" and "black" give what an fp16 overflow and a dead VAE give."""

    def __call__(self, prompt: Any = None, **kwargs: Any) -> Any:
        text = " ".join(prompt) if isinstance(prompt, list) else str(prompt)
        if "oom" in text:
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (simulated)"
            )
        result = super().__call__(prompt, **kwargs)
        if "nan" in text:
            return StableDiffusionPipelineOutput(
                images=np.full_like(result.images, np.nan), nsfw_content_detected=None
            )
        if "black" in text:
            return StableDiffusionPipelineOutput(
                images=np.zeros_like(result.images), nsfw_content_detected=None
            )
        return result

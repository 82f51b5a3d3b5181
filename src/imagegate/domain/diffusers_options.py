"""What a ``backend = "diffusers"`` registry entry may say.

It lives in the domain, torch-free, so that a typo in the registry (``stpes = 4``) stops the
server at start with the file and entry named, instead of failing the first job an hour
later in a worker.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DTYPES = ("auto", "float32", "float16", "bfloat16")
# "builtin:NAME" names weights shipped inside the package, under imagegate/weights/NAME.
BUILTIN = "builtin:"


class DiffusersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1, description="a hub repo id or a local directory (save_pretrained layout)"
    )
    # A diffusers pipeline class name ("FluxPipeline") or a "package.module:Class" path;
    # unset lets diffusers' AutoPipeline read the class from the source's model_index.json.
    pipeline: str | None = None
    steps: int = Field(default=4, ge=1, le=500)
    guidance_scale: float | None = Field(default=None, ge=0)
    # How far image-to-image moves from the reference (diffusers' `strength`).
    strength: float = Field(default=0.6, gt=0, le=1)
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # "auto": CUDA, then MPS, then CPU; or a torch device string ("cuda:1", "cpu").
    device: str = Field(default="auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    variant: str | None = None
    # Render at this fraction of the contract's size and upscale (Lanczos) to it.
    render_scale: float = Field(default=1.0, gt=0, le=1)
    # Or: render at about this many pixels, at the request's aspect, whatever its
    # resolution: for a model trained at one size (the shapes model: 64x64 = 4096).
    render_pixels: int | None = Field(default=None, ge=64, le=100_000_000)
    # Decode latents in tiles: "auto" does so above `tiling_above_pixels` rendered pixels.
    vae_tiling: Literal["auto", "on", "off"] = "auto"
    tiling_above_pixels: int = Field(default=2_500_000, ge=1)
    compile: bool = False
    channels_last: bool = False
    # torch's threads for a model on a CPU (the whole model process's setting). Unset:
    # one per core. Under load, fewer leaves cores to encode and store finished images.
    cpu_threads: int | None = Field(default=None, ge=1, le=1024)

    @model_validator(mode="after")
    def _one_render_size_rule(self) -> DiffusersOptions:
        if self.render_pixels is not None and self.render_scale != 1.0:
            raise ValueError("set render_scale or render_pixels, not both")
        return self

    def render_fraction(self, width: int, height: int) -> float:
        """The fraction of a width x height request's sides that the model renders."""
        if self.render_pixels is None:
            return self.render_scale
        return min(1.0, math.sqrt(self.render_pixels / (width * height)))

    def local_directory(self) -> Path | None:
        """Where the weights are on this machine when the source names a directory (or
        shipped weights); None for a hub repo id."""
        if self.source.startswith(BUILTIN):
            name = self.source.removeprefix(BUILTIN)
            return Path(str(resources.files("imagegate").joinpath("weights", name)))
        path = Path(self.source).expanduser()
        return path if path.is_dir() else None

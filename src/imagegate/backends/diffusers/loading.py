"""Loading a registry entry's pipeline: device, dtype, class, the shared image-to-image
pipeline, speed options, what it holds, and downloads ahead of time."""

from __future__ import annotations

import gc
import importlib
import logging
from typing import Any

import diffusers
import torch
import transformers
from diffusers.pipelines.auto_pipeline import (
    AUTO_IMAGE2IMAGE_PIPELINES_MAPPING,
    AUTO_TEXT2IMAGE_PIPELINES_MAPPING,
)

from imagegate.domain.diffusers_options import DiffusersOptions

log = logging.getLogger("imagegate.models")


class ModelLoadError(RuntimeError):
    pass


def pick_device(choice: str) -> torch.device:
    if choice != "auto":
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(choice: str, device: torch.device) -> torch.dtype:
    if choice != "auto":
        dtype: torch.dtype = getattr(torch, choice)
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    # Half precision on a CPU is slow where it works at all.
    return torch.float32


def pipeline_class(name: str | None) -> Any:
    if name is None:
        return diffusers.AutoPipelineForText2Image
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        return getattr(importlib.import_module(module_name), class_name)
    found = getattr(diffusers, name, None)
    if found is None:
        raise ModelLoadError(f"diffusers has no pipeline class {name!r}")
    return found


def load_pipeline(route: str, options: DiffusersOptions, device: torch.device) -> Any:
    dtype = pick_dtype(options.dtype, device)
    log.info("loading %s from %s on %s (%s)", route, options.source, device, dtype)
    directory = options.local_directory()
    source = str(directory) if directory is not None else options.source
    kwargs: dict[str, Any] = {"dtype": dtype}
    if options.variant:
        kwargs["variant"] = options.variant
    # Bars for reading weights from disk are noise in a server's log; the hub's download
    # bars (huggingface_hub's own) stay, because a first download can take minutes.
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    try:
        pipe = pipeline_class(options.pipeline).from_pretrained(source, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:
        hint = (
            ""
            if directory is not None
            else "; if it is not downloaded yet, run `imagegate models pull "
            f"{route}` where the Hugging Face hub is reachable"
        )
        raise ModelLoadError(
            f"could not load model {route!r} from {options.source!r}: "
            f"{type(exc).__name__}: {exc}{hint}"
        ) from exc
    # Content safety is the gateway's job; SD's checker would answer black images.
    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    denoiser_name = "transformer" if getattr(pipe, "transformer", None) is not None else "unet"
    denoiser = getattr(pipe, denoiser_name, None)
    if options.channels_last and denoiser is not None:
        denoiser.to(memory_format=torch.channels_last)
        if getattr(pipe, "vae", None) is not None:
            pipe.vae.to(memory_format=torch.channels_last)
    if options.compile and denoiser is not None:
        setattr(pipe, denoiser_name, torch.compile(denoiser))
    return pipe


def image_to_image(pipe: Any) -> Any | None:
    """The image-conditioned pipeline built from the same loaded components (no second
    copy of the weights), or None when diffusers has none for this model."""
    for key, text_class in AUTO_TEXT2IMAGE_PIPELINES_MAPPING.items():
        if isinstance(pipe, text_class) and key in AUTO_IMAGE2IMAGE_PIPELINES_MAPPING:
            image_class = AUTO_IMAGE2IMAGE_PIPELINES_MAPPING[key]
            # from_pipe casts to the dtype the components already have, and diffusers
            # warns about that cast with an empty list of modules; nothing is cast.
            verbosity = diffusers.utils.logging.get_verbosity()
            diffusers.utils.logging.set_verbosity_error()
            try:
                image_pipe = image_class.from_pipe(pipe)
            finally:
                diffusers.utils.logging.set_verbosity(verbosity)
            image_pipe.set_progress_bar_config(disable=True)
            return image_pipe
    for image_class in AUTO_IMAGE2IMAGE_PIPELINES_MAPPING.values():
        if isinstance(pipe, image_class):
            return pipe
    return None


def held_bytes(pipe: Any) -> int:
    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            for tensor in (*component.parameters(), *component.buffers()):
                total += tensor.numel() * tensor.element_size()
    return total


def release(device: torch.device) -> None:
    """Hand freed tensors' memory back to the device, once nothing references them."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def download(route: str, options: DiffusersOptions) -> str:
    """Fetch a hub source into the local cache ahead of time (with progress bars)."""
    if options.local_directory() is not None:
        return f"{route}: {options.source} is a local directory; nothing to download"
    kwargs: dict[str, Any] = {}
    if options.variant:
        kwargs["variant"] = options.variant
    try:
        path = diffusers.DiffusionPipeline.download(options.source, **kwargs)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot download {options.source!r} for route {route!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return f"{route}: {options.source} is in {path}"

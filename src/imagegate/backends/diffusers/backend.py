"""The diffusers backend as the worker sees it: load once, render batches, say what it
holds, let go of it all."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from imagegate.backends.base import GenerationInput, ProgressCallback
from imagegate.backends.diffusers import loading
from imagegate.backends.diffusers.rendering import render
from imagegate.domain.diffusers_options import DiffusersOptions
from imagegate.domain.registry import RouteSpec

log = logging.getLogger("imagegate.models")


class DiffusersBackend:
    def __init__(self, spec: RouteSpec) -> None:
        self.spec = spec
        self.options = DiffusersOptions.model_validate(spec.options)
        self.device = loading.pick_device(self.options.device)
        if self.device.type == "cpu" and self.options.cpu_threads is not None:
            torch.set_num_threads(self.options.cpu_threads)
        self._text: Any = loading.load_pipeline(spec.route, self.options, self.device)
        self._image: Any = None

    def _pipeline(self, task: str) -> Any:
        if task == "text-to-image":
            return self._text
        if self._image is None:
            self._image = loading.image_to_image(self._text)
            if self._image is None:
                raise RuntimeError(
                    f"model {self.spec.route!r} cannot take reference images: diffusers has "
                    f"no image-to-image pipeline for {type(self._text).__name__}; "
                    f"remove {task!r} from its tasks"
                )
        return self._image

    def generate(
        self, requests: Sequence[GenerationInput], progress: ProgressCallback
    ) -> list[list[Image.Image]]:
        pipe = self._pipeline(requests[0].task)
        try:
            return render(
                pipe,
                self.options,
                requests,
                progress,
                max_batch=self.spec.max_batch,
                device=self.device,
            )
        except BaseException:
            # A failed call (out of memory, cancelled) leaves activations for the
            # collector; hand them back before the next job needs the room.
            loading.release(self.device)
            raise

    def memory_bytes(self) -> int:
        return loading.held_bytes(self._text) if self._text is not None else 0

    def close(self) -> None:
        self._text = self._image = None
        loading.release(self.device)

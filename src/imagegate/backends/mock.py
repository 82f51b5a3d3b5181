"""The mock backend: instant, deterministic test images. Not a model.

Each image is a two-colour gradient and a strip of blocks, both drawn from a hash of
(prompt, seed, image index), at exactly the requested size. The same request and seed give
the same pixels; anything else gives different ones. It exists so that integrations can be
tested offline and in CI without a GPU or weights.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

from PIL import Image, ImageDraw

from imagegate.backends.base import GenerationInput, ProgressCallback
from imagegate.domain.registry import RouteSpec

_STEPS = 4


def _digest(request: GenerationInput, index: int) -> bytes:
    seed = request.image_seed(index)
    text = f"{request.prompt}\x00{request.negative_prompt or ''}\x00{seed}"
    return hashlib.sha256(text.encode()).digest()


def draw(request: GenerationInput, index: int) -> Image.Image:
    digest = _digest(request, index)
    width, height = request.width, request.height
    start = Image.new("RGB", (width, height), tuple(digest[0:3]))
    end = Image.new("RGB", (width, height), tuple(digest[3:6]))
    mask = Image.linear_gradient("L").rotate(90 if digest[6] % 2 else 0).resize((width, height))
    image = Image.composite(start, end, mask)
    pen = ImageDraw.Draw(image)
    block = max(4, width // 32)
    for i, byte in enumerate(digest[:16]):
        colour = (byte, 255 - byte, (byte * 7) % 256)
        x = block + i * block
        pen.rectangle((x, block, x + block - 1, 2 * block - 1), fill=colour)
    return image


class MockBackend:
    def __init__(self, spec: RouteSpec) -> None:
        self.delay_s = spec.delay_ms / 1000
        # Tests of failover make a route that fails on cue: any prompt containing this.
        self.fail_marker = str(spec.options.get("fail_marker") or "")

    def generate(
        self, requests: Sequence[GenerationInput], progress: ProgressCallback
    ) -> list[list[Image.Image]]:
        for step in range(1, _STEPS + 1):
            if self.delay_s:
                # The job's configured duration, spread over the steps so that progress
                # and cancellation behave as they do with a real model.
                time.sleep(self.delay_s / _STEPS)
            progress(step, _STEPS)
            if self.fail_marker and any(self.fail_marker in r.prompt for r in requests):
                raise RuntimeError(f"injected failure: the prompt contains {self.fail_marker!r}")
        return [[draw(request, index) for index in range(request.n)] for request in requests]

    def memory_bytes(self) -> int:
        return 0

    def close(self) -> None:
        pass

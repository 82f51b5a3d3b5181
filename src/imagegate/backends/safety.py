"""Output image checks: a classifier that looks at each generated image before it is
stored, for ``has_nsfw_contents`` and for routes that block unsafe outputs.

The shipped one is NudeNet 3 (``pip install "imagegate[safety]"``): a YOLOv8-n detector of
exposed and covered body parts, exported to ONNX and shipped inside the ``nudenet`` wheel
(12 MB), so it runs offline on the CPU through onnxruntime in about 0.1 s an image. It
finds nudity only: violence, gore, hateful symbols and anything drawn in a style it was not
trained on pass it. Its heavy imports happen when it is built, in the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from PIL import Image


class ImageChecker(Protocol):
    def check(self, images: Sequence[Image.Image]) -> list[bool]:
        """One flag per image: True where the image is unsafe."""
        ...


class NudeNetChecker:
    # Covered parts, faces and feet are detected too; only these count as unsafe.
    UNSAFE = frozenset(
        {
            "FEMALE_BREAST_EXPOSED",
            "FEMALE_GENITALIA_EXPOSED",
            "MALE_GENITALIA_EXPOSED",
            "BUTTOCKS_EXPOSED",
            "ANUS_EXPOSED",
        }
    )

    def __init__(self, threshold: float = 0.45) -> None:
        from nudenet import NudeDetector

        self.threshold = threshold
        self._detector: Any = NudeDetector()

    def detections(self, image: Image.Image) -> list[dict[str, Any]]:
        import numpy as np

        # NudeNet converts RGBA to BGR itself; a plain RGB array would be read as BGR.
        found: list[dict[str, Any]] = self._detector.detect(np.asarray(image.convert("RGBA")))
        return found

    def check(self, images: Sequence[Image.Image]) -> list[bool]:
        return [
            any(
                d["class"] in self.UNSAFE and d["score"] >= self.threshold
                for d in self.detections(image)
            )
            for image in images
        ]

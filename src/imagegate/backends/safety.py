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
from pathlib import Path
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
        import nudenet
        import onnxruntime

        self.threshold = threshold
        self._detector: Any = nudenet.NudeDetector()
        # onnxruntime's default thread pool spins for a while after every run, waiting for
        # more work: about 70 ms of CPU an image here, taken from the model generating
        # beside it, for no gain in speed (docs/benchmarks.md). Same model, same answers.
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._detector.onnx_session = onnxruntime.InferenceSession(
            str(Path(nudenet.__file__).with_name("320n.onnx")),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )

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

"""Output image checks: a classifier that looks at each generated image before it is
stored, for ``has_nsfw_contents`` and for routes that block unsafe outputs.

The shipped one is NudeNet 3 (``pip install "imagegate[safety]"``): a YOLOv8-n detector of
exposed and covered body parts, exported to ONNX and shipped inside the ``nudenet`` wheel
(12 MB), so it runs offline on the CPU through onnxruntime in about 20 ms a 1024² image. It
finds nudity only: violence, gore, hateful symbols and anything drawn in a style it was not
trained on pass it. Its heavy imports happen when it is built, in the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

# nudenet's post-processing looks only at candidate boxes whose best class score reaches
# this (its own constant, in ``nudenet._postprocess``).
NUDENET_MIN_SCORE = 0.2


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
        """nudenet's ``detect``, step for step, from RGB rather than RGBA pixels."""
        from nudenet import nudenet

        blob, geometry = self.model_input(image)
        output = self._detector.onnx_session.run(None, {self._detector.input_name: blob})[0]
        # The model proposes 2,100 boxes an image and nudenet's post-processing visits each
        # in a Python loop, skipping all but a few: about 12 ms of a 35 ms check. Dropping
        # the skipped ones first, in one array operation, leaves its answers as they were.
        found: list[dict[str, Any]] = nudenet._postprocess(
            [keep_candidates(output)],
            *geometry,
            self._detector.input_width,
            self._detector.input_height,
        )
        return found

    def model_input(
        self, image: Image.Image
    ) -> tuple[Any, tuple[int, int, float, float, int, int]]:
        """What nudenet's own ``_read_image`` makes of the image: the model's input and
        (x_pad, y_pad, x_ratio, y_ratio, width, height). nudenet wants RGBA pixels, turns
        them into BGR and swaps that back to RGB while resizing; an RGBA copy of a 1024x1024
        image took about 9 ms of a 25 ms check. From RGB, the input is the same."""
        import cv2
        import numpy as np

        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        height, width = pixels.shape[:2]
        side = max(width, height)
        # As nudenet does: padded at the right or bottom to a square, then resized.
        square = cv2.copyMakeBorder(pixels, 0, side - height, 0, side - width, cv2.BORDER_CONSTANT)
        size = (self._detector.input_width, self._detector.input_height)
        blob = cv2.dnn.blobFromImage(square, 1 / 255.0, size, (0, 0, 0), swapRB=False)
        return blob, (side - width, side - height, side / width, side / height, width, height)

    def check(self, images: Sequence[Image.Image]) -> list[bool]:
        return [
            any(
                d["class"] in self.UNSAFE and d["score"] >= self.threshold
                for d in self.detections(image)
            )
            for image in images
        ]


def keep_candidates(output: Any) -> Any:
    """The candidates of a (1, 4 + classes, boxes) YOLO output that nudenet would consider,
    in their order (its non-maximum suppression breaks ties by position)."""
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[2] < 2:
        return output
    keep = output[0, 4:, :].max(axis=0) >= NUDENET_MIN_SCORE
    # nudenet squeezes the batch axis away, so a single column would lose its own axis too:
    # the first two always stay, and nudenet's own test passes over them if they score low.
    keep[:2] = True
    return output[:, :, keep]

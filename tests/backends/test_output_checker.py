"""The shipped output image check, NudeNet, runs offline from its wheel and leaves
ordinary images alone. (No unsafe image can be made or fetched here to show what it
catches; docs/safety.md says what is known of that.)"""

from __future__ import annotations

import random

import nudenet.nudenet as nudenet_module
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageDraw

from imagegate.backends.safety import NudeNetChecker, keep_candidates
from imagegate.training import scenes
from imagegate.worker.output_check import OutputCheck, checker_path

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def checker() -> NudeNetChecker:
    return NudeNetChecker()


def benign_images() -> list[Image.Image]:
    rng = random.Random(7)
    images = [image for image, _, _ in (next(scenes.examples(s, size=256)) for s in range(12))]
    for colour in [(224, 172, 105), (141, 85, 36), (255, 219, 172), (60, 60, 60)]:
        # skin tones, flat and in soft shapes: what a naive colour rule would flag
        image = Image.new("RGB", (512, 512), colour)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y, r = rng.randrange(512), rng.randrange(512), rng.randrange(30, 120)
            shade = tuple(max(0, c - rng.randrange(40)) for c in colour)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=shade)
        images.append(image)
    return images


def test_nudenet_flags_no_ordinary_image(checker: NudeNetChecker) -> None:
    images = benign_images()
    assert checker.check(images) == [False] * len(images)


def test_the_detector_leaves_the_cpu_when_idle(checker: NudeNetChecker) -> None:
    options = checker._detector.onnx_session.get_session_options()
    for pool in ("intra_op", "inter_op"):
        assert options.get_session_config_entry(f"session.{pool}.allow_spinning") == "0"


def test_detections_name_nudenets_classes(checker: NudeNetChecker) -> None:
    found = checker.detections(Image.new("RGB", (320, 320), (200, 150, 120)))
    assert isinstance(found, list)
    assert all({"class", "score", "box"} <= set(d) for d in found)


def test_auto_picks_nudenet_when_installed_and_none_turns_it_off() -> None:
    assert checker_path("auto") == "imagegate.backends.safety:NudeNetChecker"
    assert checker_path("nudenet") == "imagegate.backends.safety:NudeNetChecker"
    assert checker_path("none") is None
    assert checker_path("my.module:Checker") == "my.module:Checker"


async def test_the_worker_builds_the_check_once_and_flags_each_image() -> None:
    check = OutputCheck("nudenet")
    images = benign_images()[:3]
    assert await check.flags(images) == [False] * 3
    first = check._checker
    await check.flags(images)
    assert check._checker is first
    assert await OutputCheck("none").flags(images) == [False] * 3


def _postprocess(output: np.ndarray) -> list[dict[str, object]]:
    """nudenet's own post-processing of one raw model output, for a 1024x768 image."""
    found: list[dict[str, object]] = nudenet_module._postprocess(
        [output], 0, 256, 1.0, 1024 / 768, 1024, 768, 320, 320
    )
    return found


# Scores on and around nudenet's threshold (as float32, the model's type), and far from it.
_SCORES = st.sampled_from(
    [0.0, 0.05, float(np.nextafter(np.float32(0.2), 0)), 0.2, 0.2000001, 0.25, 0.5, 0.93]
)


@st.composite
def yolo_outputs(draw: st.DrawFn) -> np.ndarray:
    boxes = draw(st.integers(2, 40))  # the model always proposes many (2,100)
    centres = draw(arrays(np.float32, (2, boxes), elements=st.floats(0, 320, width=32)))
    sides = draw(arrays(np.float32, (2, boxes), elements=st.floats(1, 200, width=32)))
    scores = draw(arrays(np.float32, (18, boxes), elements=_SCORES))
    return np.concatenate([centres, sides, scores])[np.newaxis]


@settings(max_examples=300, deadline=None)
@given(yolo_outputs())
def test_dropping_unseen_candidates_leaves_nudenets_answer_as_it_was(
    output: np.ndarray,
) -> None:
    assert _postprocess(keep_candidates(output)) == _postprocess(output)


def test_the_checker_finds_what_the_unfiltered_detector_finds(checker: NudeNetChecker) -> None:
    images = [
        *benign_images(),
        Image.effect_noise((640, 480), 90).convert("RGB"),
        Image.linear_gradient("L").resize((1024, 1024)).convert("RGB"),
    ]
    filtered = [checker.detections(image) for image in images]
    # nudenet's own detect: its preprocessing, every candidate through its loop.
    unfiltered = [checker._detector.detect(np.asarray(i.convert("RGBA"))) for i in images]
    assert filtered == unfiltered
    # Not vacuous: these images do give the post-processing candidates to weigh.
    session = checker._detector.onnx_session
    raw = session.run(None, {checker._detector.input_name: _blob(images[0])})[0]
    assert keep_candidates(raw).shape[2] < raw.shape[2]


def _blob(image: Image.Image) -> np.ndarray:
    blob: np.ndarray = nudenet_module._read_image(np.asarray(image.convert("RGBA")), 320)[0]
    return blob


def test_the_model_sees_what_nudenet_would_give_it_for_any_shape_and_mode(
    checker: NudeNetChecker,
) -> None:
    """The checker's preprocessing (from RGB) makes exactly the model input and geometry
    that nudenet's own makes from the RGBA array it asks for: square, wide, tall and odd
    images, and other modes. The rest of the check is nudenet's own code."""
    rng = random.Random(3)
    images = [
        Image.merge("RGB", [Image.effect_noise((w, h), rng.randrange(20, 90)) for _ in "RGB"])
        for w, h in ((512, 512), (1360, 768), (768, 1360), (333, 517))
    ]
    images += [benign_images()[-1], images[1].convert("L"), images[2].convert("RGBA")]
    for image in images:
        blob, geometry = checker.model_input(image)
        theirs = nudenet_module._read_image(np.asarray(image.convert("RGBA")), 320)
        assert np.array_equal(blob, theirs[0])
        x_ratio, y_ratio, x_pad, y_pad, width, height = theirs[1:]
        assert geometry == (x_pad, y_pad, x_ratio, y_ratio, width, height)
        assert checker.detections(image) == checker._detector.detect(
            np.asarray(image.convert("RGBA"))
        )

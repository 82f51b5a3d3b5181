"""The shipped output image check, NudeNet, runs offline from its wheel and leaves
ordinary images alone. (No unsafe image can be made or fetched here to show what it
catches; docs/safety.md says what is known of that.)"""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageDraw

from imagegate.backends.safety import NudeNetChecker
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

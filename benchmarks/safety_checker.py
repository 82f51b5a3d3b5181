"""The output image check on images made here: how often it flags ordinary images (false
positives) and how long it takes. No unsafe images can be made or fetched on this machine,
so what it catches is not measured here.

    python benchmarks/safety_checker.py [--images 200]
"""

from __future__ import annotations

import argparse
import random
import time

from PIL import Image, ImageDraw, ImageFilter

from imagegate.backends.safety import NudeNetChecker
from imagegate.training import scenes


def skin_blobs(rng: random.Random, size: int) -> Image.Image:
    """Soft skin-toned shapes: where a colour rule would fire."""
    base = rng.choice([(224, 172, 105), (141, 85, 36), (255, 219, 172), (198, 134, 66)])
    image = Image.new("RGB", (size, size), base)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(3, 10)):
        x, y, r = rng.randrange(size), rng.randrange(size), rng.randrange(size // 12, size // 3)
        shade = tuple(max(0, min(255, c + rng.randrange(-50, 30))) for c in base)
        draw.ellipse((x - r, y - int(r * 1.4), x + r, y + int(r * 1.4)), fill=shade)
    return image.filter(ImageFilter.GaussianBlur(size / 40))


def noise(rng: random.Random, size: int) -> Image.Image:
    return Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200, help="per kind")
    args = parser.parse_args()
    checker = NudeNetChecker()
    rng = random.Random(2026)
    stream = scenes.examples(2026, size=512)
    kinds = {
        "shapes scenes (512x512)": lambda: next(stream)[0],
        "skin-toned soft blobs (512x512)": lambda: skin_blobs(rng, 512),
        "random noise (512x512)": lambda: noise(rng, 512),
        "skin-toned blobs at 1360x768": lambda: skin_blobs(rng, 1360).resize((1360, 768)),
    }
    for kind, make in kinds.items():
        images = [make() for _ in range(args.images)]
        started = time.perf_counter()
        flags = checker.check(images)
        per_image = (time.perf_counter() - started) / len(images) * 1000
        print(f"{kind}: {sum(flags)}/{len(images)} flagged, {per_image:.0f} ms an image")


if __name__ == "__main__":
    main()

"""How long a delivered PNG takes to encode: imagegate's writer against Pillow's fastest.

Three 1024x1024 RGB stand-ins for model outputs, built with Pillow alone:

- noise: what a pipeline with random weights draws, nearly incompressible;
- upscaled: a 64x64 render upscaled with Lanczos (``render_scale = 0.0625``);
- smooth: blurred noise, closer to a photo.

For each it prints the best of ``--repeats`` encodes and the file size, for
``worker/png.py`` and for Pillow at ``compress_level=1`` (plain and run-length deflate,
the setting imagegate used before), and checks that the file decodes to the same pixels.

    python benchmarks/png_encode.py --repeats 20
"""

from __future__ import annotations

import argparse
import io
import time
import zlib
from collections.abc import Callable

from PIL import Image, ImageFilter

from imagegate.worker.png import encode_png

SIDE = 1024


def _noise(side: int) -> Image.Image:
    return Image.merge("RGB", [Image.effect_noise((side, side), 60) for _ in range(3)])


def samples() -> dict[str, Image.Image]:
    return {
        "noise": _noise(SIDE),
        "upscaled": _noise(64).resize((SIDE, SIDE), Image.Resampling.LANCZOS),
        "smooth": _noise(SIDE).filter(ImageFilter.GaussianBlur(3)),
    }


def _pillow(image: Image.Image, strategy: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1, compress_type=strategy)
    return buffer.getvalue()


ENCODERS: dict[str, Callable[[Image.Image], bytes]] = {
    "imagegate (Up filter, ISA-L level 1)": encode_png,
    "Pillow compress_level=1, Z_RLE": lambda image: _pillow(image, zlib.Z_RLE),
    "Pillow compress_level=1": lambda image: _pillow(image, zlib.Z_DEFAULT_STRATEGY),
}


def best_ms(encoder: Callable[[Image.Image], bytes], image: Image.Image, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        encoder(image)
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"{SIDE}x{SIDE} RGB, best of {args.repeats}; raw size {SIDE * SIDE * 3 / 1e6:.2f} MB")
    for name, image in samples().items():
        print(name)
        for label, encoder in ENCODERS.items():
            data = encoder(image)
            with Image.open(io.BytesIO(data)) as back:
                if back.tobytes() != image.tobytes():
                    raise SystemExit(f"{label} did not round-trip {name}")
            ms = best_ms(encoder, image, args.repeats)
            print(f"  {label:38s} {ms:6.1f} ms  {len(data) / 1e6:5.2f} MB")


if __name__ == "__main__":
    main()

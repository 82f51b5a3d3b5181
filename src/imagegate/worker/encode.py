"""Images to file bytes, at settings chosen for speed (outputs are served once or twice)."""

from __future__ import annotations

import io
import zlib

from PIL import Image

from imagegate.domain.images import EXTENSIONS as IMAGE_EXTENSIONS

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# output_format -> file extension, through the one table of image formats.
EXTENSIONS = {name: IMAGE_EXTENSIONS[pil] for name, pil in PIL_FORMATS.items()}


def encode(image: Image.Image, output_format: str) -> bytes:
    buffer = io.BytesIO()
    if output_format == "png":
        # Run-length deflate at level 1: about a third faster than plain level 1 on
        # model outputs, and the files come out smaller (benchmarks/backend_overhead.py).
        image.save(buffer, "PNG", compress_level=1, compress_type=zlib.Z_RLE)
    elif output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=92)
    else:
        image.save(buffer, "WEBP", quality=92, method=2)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")

"""Images to file bytes, at settings chosen for speed (outputs are served once or twice)."""

from __future__ import annotations

import io

from PIL import Image

from imagegate.domain.images import EXTENSIONS as IMAGE_EXTENSIONS
from imagegate.worker.png import encode_png

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# output_format -> file extension, through the one table of image formats.
EXTENSIONS = {name: IMAGE_EXTENSIONS[pil] for name, pil in PIL_FORMATS.items()}


def encode(image: Image.Image, output_format: str) -> bytes:
    if output_format == "png":
        return encode_png(image)
    buffer = io.BytesIO()
    if output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=92)
    else:
        image.save(buffer, "WEBP", quality=92, method=2)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")

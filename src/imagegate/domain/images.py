"""Checks on image bytes that arrive from outside: format, pixel cap, full decode."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from imagegate.errors import BadRequestError

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP"})
CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
# File extension (and the contract's output_format names) to content type.
CONTENT_TYPE_BY_EXTENSION = {EXTENSIONS[f]: CONTENT_TYPES[f] for f in CONTENT_TYPES} | {
    "jpeg": "image/jpeg"
}
# Content type (and the common misspelling image/jpg) to file extension.
EXTENSION_BY_CONTENT_TYPE = {CONTENT_TYPES[f]: EXTENSIONS[f] for f in CONTENT_TYPES} | {
    "image/jpg": "jpg"
}


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Raise ``BadRequestError`` (message without the field; callers prefix it) unless
    ``data`` is a whole image of an allowed format within the pixel cap.

    The pixel cap is checked on the header, before any pixel is decoded, so a small file
    that claims to be enormous (a decompression bomb) costs nothing.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise BadRequestError(
                    f"image is {width}x{height} pixels, more than the limit of {max_pixels}"
                )
            if image.format not in ALLOWED_FORMATS:
                raise BadRequestError(
                    f"image format {image.format} is not accepted; use PNG, JPEG, WEBP, GIF or BMP"
                )
            image_format = image.format
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadRequestError(f"image has too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise BadRequestError("not a valid image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRequestError(f"image could not be decoded ({exc})") from exc
    return ImageInfo(format=image_format, width=width, height=height)


def content_type_of(data: bytes) -> str:
    """The content type of image bytes that were checked when they arrived."""
    with Image.open(io.BytesIO(data)) as image:
        return CONTENT_TYPES.get(image.format or "", "image/png")

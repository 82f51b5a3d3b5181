"""The fast PNG writer: files any decoder reads back to exactly the pixels written."""

from __future__ import annotations

import io
import struct
import zlib

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from imagegate.worker.encode import encode
from imagegate.worker.png import encode_png

BANDS = {"L": 1, "RGB": 3, "RGBA": 4}


@st.composite
def images(draw: st.DrawFn) -> Image.Image:
    mode = draw(st.sampled_from(sorted(BANDS)))
    width = draw(st.integers(1, 40))
    height = draw(st.integers(1, 40))
    size = width * height * BANDS[mode]
    # Mostly-repeated bytes as well as noise, so runs and literals are both deflated.
    pixels = draw(st.one_of(st.binary(min_size=size, max_size=size), st.just(bytes(size))))
    return Image.frombytes(mode, (width, height), pixels)


def read(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()  # Pillow checks every chunk's CRC while it reads
    return image


@given(images())
def test_every_pixel_comes_back(image: Image.Image) -> None:
    back = read(encode_png(image))

    assert back.format == "PNG"
    assert (back.mode, back.size) == (image.mode, image.size)
    assert back.tobytes() == image.tobytes()


def test_the_stream_is_well_formed_png() -> None:
    image = Image.radial_gradient("L").convert("RGB")
    data = encode_png(image)

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, kinds = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        offset += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    # Width, height, 8 bits, colour type 2 (RGB), no interlace.
    assert data[16:29] == struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0)


def test_other_modes_are_written_as_rgb_or_rgba() -> None:
    palette = Image.new("P", (3, 2), 5)
    with_alpha = Image.new("LA", (3, 2), (90, 40))

    assert read(encode_png(palette)).tobytes() == palette.convert("RGB").tobytes()
    assert read(encode_png(with_alpha)).tobytes() == with_alpha.convert("RGBA").tobytes()


def test_smooth_images_are_compressed() -> None:
    image = Image.linear_gradient("L").resize((512, 512)).convert("RGB")

    assert len(encode(image, "png")) < 512 * 512 * 3 / 20

"""The official `wavespeed` SDK from PyPI, unchanged, configured only with imagegate's base
URL and a key: it runs the reference route to completion, uploads an image with its
upload() (the ticket flow: POST /media/uploads, then PUT to the signed URL), and uses it
as a reference."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import ServerFactory

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_official_wavespeed_sdk_runs_uploads_and_uses_references(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    import wavespeed

    server = make_server()  # uploads are read from storage: no private-URL opt-in needed
    client = wavespeed.Client(api_key=server.key, base_url=server.url)

    output = client.run(
        "kwaivgi/kling-image-o1/text-to-image",
        {"prompt": "a red circle", "aspect_ratio": "1:1"},
        timeout=60,
        poll_interval=0.2,
    )
    assert len(output["outputs"]) == 1
    image = httpx.get(output["outputs"][0], timeout=10)
    with Image.open(io.BytesIO(image.content)) as drawn:
        assert drawn.size == (1024, 1024)

    reference = tmp_path / "ref.png"
    Image.new("RGB", (160, 90), (0, 120, 255)).save(reference)
    url = client.upload(str(reference))
    assert url.startswith(server.url)
    edited = client.run(
        "kwaivgi/kling-image-o1/image-to-image",
        {"prompt": "the same, brighter", "images": [url], "aspect_ratio": "auto"},
        timeout=60,
        poll_interval=0.2,
    )
    result = httpx.get(edited["outputs"][0], timeout=10)
    with Image.open(io.BytesIO(result.content)) as drawn:
        assert drawn.size == (1360, 768)  # "auto" took the reference's 16:9

    synced = client.run(
        "kwaivgi/kling-image-o1/text-to-image", {"prompt": "a blue square"}, enable_sync_mode=True
    )
    assert len(synced["outputs"]) == 1
    assert server.log_problems() == []

"""The sync SDK Client against a real `imagegate serve` on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from imagegate import client as sdk
from tests.e2e.conftest import ServerFactory

pytestmark = pytest.mark.e2e
ROUTE = "kwaivgi/kling-image-o1"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_sync_client_runs_uploads_lists_and_times_out(
    make_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    monkeypatch.setenv("IMAGEGATE_BASE_URL", server.url)
    monkeypatch.setenv("IMAGEGATE_API_KEY", server.key)
    with sdk.Client() as client:  # configured from the environment alone
        result = client.run(ROUTE, prompt="a red circle", n=2, aspect_ratio="1:1")
        paths = result.save_all(tmp_path)
        assert len(paths) == 2 and all(p.suffix == ".png" for p in paths)
        reference = tmp_path / "ref.png"
        Image.new("RGB", (90, 160), (0, 200, 0)).save(reference)
        url = client.upload(reference)
        with_ref = client.run(ROUTE, prompt="like it", images=[url], aspect_ratio="auto")
        assert with_ref.prediction.model == ROUTE
        assert with_ref.images[0].data.startswith(b"\x89PNG")
        ids = [p.id for p in client.predictions(page_size=1)]
        assert ids == [with_ref.id, result.id]
        assert [m.route for m in client.models()] == [ROUTE]
    impatient = sdk.Client(server.url, server.key, timeout=0.000_001, max_retries=0)
    with pytest.raises(sdk.APITimeoutError):
        impatient.get(result.id)
    impatient.close()

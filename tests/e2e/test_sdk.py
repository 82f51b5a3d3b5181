"""The sync SDK Client against a real `imagegate serve` on 127.0.0.1."""

from __future__ import annotations

import socket
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
    # A server that takes the connection and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        impatient = sdk.Client(address, server.key, timeout=0.5, max_retries=0)
        with impatient, pytest.raises(sdk.APITimeoutError):
            impatient.get(result.id)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_events_arrive_live_from_a_real_server(make_server: ServerFactory) -> None:
    import time

    from tests.e2e.conftest import DEFAULT_MODELS

    server = make_server(models=DEFAULT_MODELS.replace("delay_ms = 0", "delay_ms = 3000"))
    with sdk.Client(server.url, server.key) as client:
        handle = client.submit(ROUTE, prompt="slow")
        arrivals = [(time.monotonic(), p) for p in handle.events()]
    statuses = [p.status for _, p in arrivals]
    assert statuses[-1] == "completed"
    steps = [p.progress.step for _, p in arrivals if p.progress is not None]
    assert len(steps) >= 2 and steps == sorted(steps)
    # Live: the first step was seen well before the end, not all at once at the end.
    assert arrivals[-1][0] - arrivals[0][0] > 1.0

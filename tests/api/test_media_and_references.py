"""Uploads (both forms), signed file links, and reference images in every accepted form."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from PIL import Image

from tests.conftest import Api

pytestmark = pytest.mark.anyio


def png(size: tuple[int, int] = (64, 32), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def image_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving /wide.png, /tall.png and /not-an-image."""
    files = {"/wide.png": png((200, 100)), "/tall.png": png((90, 160)), "/not-an-image": b"hi"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_binary_upload_gives_a_download_url_serving_the_bytes(api: Api) -> None:
    data = png()
    response = await api.client.post(
        "/api/v3/media/upload/binary",
        files={"file": ("ref.png", data, "image/png")},
        headers=api.auth,
    )
    assert response.status_code == 200, response.text
    url = response.json()["data"]["download_url"]
    fetched = await api.client.get(url)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["content-type"] == "image/png"


async def test_upload_that_is_not_an_image_is_400(api: Api) -> None:
    response = await api.client.post(
        "/api/v3/media/upload/binary",
        files={"file": ("a.png", b"not a png", "image/png")},
        headers=api.auth,
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("file:")


async def test_upload_over_the_cap_is_413(api: Api) -> None:
    cap = api.services.settings.max_upload_bytes  # type: ignore[attr-defined]
    response = await api.client.post(
        "/api/v3/media/upload/binary",
        files={"file": ("big.png", b"0" * (cap + 1), "image/png")},
        headers=api.auth,
    )
    assert response.status_code == 413
    assert response.json()["code"] == 413


async def test_upload_needs_a_key(api: Api) -> None:
    response = await api.client.post(
        "/api/v3/media/upload/binary", files={"file": ("ref.png", png(), "image/png")}
    )
    assert response.status_code == 401


async def ticket_for(api: Api, data: bytes) -> httpx.Response:
    return await api.client.post(
        "/api/v3/media/uploads",
        json={"filename": "r.png", "size": len(data), "content_type": "image/png"},
        headers=api.auth,
    )


async def test_ticket_flow_put_then_download(api: Api) -> None:
    data = png((10, 10))
    ticket = await ticket_for(api, data)
    assert ticket.status_code == 200, ticket.text
    body = ticket.json()["data"]
    assert body["upload"]["method"] == "PUT"
    put = await api.client.put(
        body["upload"]["url"], content=data, headers=body["upload"]["headers"]
    )
    assert put.status_code == 200, put.text
    assert (await api.client.get(body["download_url"])).content == data


async def test_ticket_put_with_a_forged_signature_is_404(api: Api) -> None:
    ticket = await api.client.post(
        "/api/v3/media/uploads",
        json={"filename": "r.png", "size": 100, "content_type": "image/png"},
        headers=api.auth,
    )
    url = ticket.json()["data"]["upload"]["url"]
    forged = url[: url.index("sig=") + 4] + "0" * 40
    assert (await api.client.put(forged, content=png())).status_code == 404


async def test_file_link_with_tampered_key_or_expiry_is_404(api: Api) -> None:
    data = (await api.submit({"prompt": "x", "enable_sync_mode": True})).json()["data"]
    url = data["outputs"][0]
    assert (await api.client.get(url.replace("/0.png", "/1.png"))).status_code == 404
    assert (await api.client.get(url.replace("expires=", "expires=1"))).status_code == 404


async def test_uploaded_file_works_as_reference_and_auto_takes_its_aspect(api: Api) -> None:
    upload = await api.client.post(
        "/api/v3/media/upload/binary",
        files={"file": ("ref.png", png((90, 160)), "image/png")},
        headers=api.auth,
    )
    url = upload.json()["data"]["download_url"]
    response = await api.submit(
        {"prompt": "x", "images": [url], "aspect_ratio": "auto", "enable_sync_mode": True}
    )
    data = response.json()["data"]
    assert data["status"] == "completed", data
    image = Image.open(io.BytesIO((await api.client.get(data["outputs"][0])).content))
    assert image.size == (768, 1360)  # 90x160 snaps to 9:16


async def test_data_uri_reference_is_accepted(api: Api) -> None:
    uri = "data:image/png;base64," + base64.b64encode(png((200, 100))).decode()
    data = (
        await api.submit(
            {"prompt": "x", "images": [uri], "aspect_ratio": "auto", "enable_sync_mode": True}
        )
    ).json()["data"]
    assert data["status"] == "completed"
    image = Image.open(io.BytesIO((await api.client.get(data["outputs"][0])).content))
    assert image.size == (1440, 720)  # 2:1


async def test_http_reference_is_fetched_and_checked(api: Api, image_server: str) -> None:
    data = (
        await api.submit(
            {
                "prompt": "x",
                "images": [f"{image_server}/tall.png"],
                "aspect_ratio": "auto",
                "enable_sync_mode": True,
            }
        )
    ).json()["data"]
    assert data["status"] == "completed"


async def test_image_to_image_runs_with_a_reference(api: Api, image_server: str) -> None:
    response = await api.submit(
        {"prompt": "x", "images": [f"{image_server}/wide.png"], "enable_sync_mode": True},
        task="image-to-image",
    )
    assert response.json()["data"]["status"] == "completed"


async def test_image_to_image_without_reference_is_400(api: Api) -> None:
    response = await api.submit({"prompt": "x"}, task="image-to-image")
    assert response.status_code == 400
    assert response.json()["message"].startswith("images:")


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("/not-an-image", "not a valid image"),
        ("/missing.png", "HTTP 404"),
    ],
)
async def test_bad_http_reference_is_400_naming_the_entry(
    api: Api, image_server: str, entry: str, says: str
) -> None:
    good = f"{image_server}/wide.png"
    response = await api.submit({"prompt": "x", "images": [good, f"{image_server}{entry}"]})
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("images[1]:") and says in message, message


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("data:image/png;base64,!!!notbase64", "base64"),
        ("data:text/plain;base64,aGk=", "data:image"),
        ("data:image/png;base64," + base64.b64encode(b"not png").decode(), "not a valid image"),
        ("file:///etc/passwd", "scheme"),
        ("ftp://example.com/a.png", "scheme"),
    ],
)
async def test_bad_reference_entries_are_400(api: Api, entry: str, says: str) -> None:
    response = await api.submit({"prompt": "x", "images": [entry]})
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("images[0]:") and says in message, message


async def test_decompression_bomb_is_refused_before_decoding(api: Api) -> None:
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, "PNG")  # 64 Mpx in a few KB
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    response = await api.submit({"prompt": "x", "images": [uri]})
    assert response.status_code == 400
    assert "pixels" in response.json()["message"]


async def test_private_addresses_are_refused_unless_allowed(api: Api, image_server: str) -> None:
    api.services.media.fetch_policy = type(api.services.media.fetch_policy)()  # type: ignore[attr-defined]
    response = await api.submit({"prompt": "x", "images": [f"{image_server}/wide.png"]})
    assert response.status_code == 400
    assert "loopback" in response.json()["message"]
    webhook = await api.submit({"prompt": "x", "webhook": "http://10.1.2.3/hook"})
    assert webhook.status_code == 400
    assert webhook.json()["message"].startswith("webhook:")


async def test_a_completed_ticket_cannot_be_overwritten(api: Api) -> None:
    data = png((10, 10))
    ticket = await ticket_for(api, data)
    url = ticket.json()["data"]["upload"]["url"]
    assert (await api.client.put(url, content=data)).status_code == 200
    again = await api.client.put(url, content=png((10, 10), "blue"))
    assert again.status_code == 400
    assert (await api.client.get(ticket.json()["data"]["download_url"])).content == data


@pytest.mark.parametrize("content_type", ["image/svg+xml", "text/plain", "image/"])
async def test_ticket_for_an_unsupported_type_is_400(api: Api, content_type: str) -> None:
    response = await api.client.post(
        "/api/v3/media/uploads",
        json={"filename": "r.svg", "size": 10, "content_type": content_type},
        headers=api.auth,
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("content_type:")


async def test_upload_with_a_very_long_filename_is_stored(api: Api) -> None:
    response = await api.client.post(
        "/api/v3/media/upload/binary",
        files={"file": ("x" * 1000 + ".png", png(), "image/png")},
        headers=api.auth,
    )
    assert response.status_code == 200, response.text


async def test_a_ticket_link_used_before_its_put_is_400(api: Api) -> None:
    ticket = await ticket_for(api, png((10, 10)))
    url = ticket.json()["data"]["download_url"]
    response = await api.submit({"prompt": "x", "images": [url]})
    assert response.status_code == 400
    assert "was its upload completed" in response.json()["message"]

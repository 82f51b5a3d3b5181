"""Fixed reproductions of what the Schemathesis run found, against a real server on both
database backends: each request must get a documented 4xx in the envelope, never a 5xx."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e

SUBMIT = "/api/v3/kwaivgi/kling-image-o1/text-to-image"
INT64_MAX = 2**63 - 1


def assert_client_error(response: httpx.Response, status: int, mentions: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == status
    assert mentions in body["message"], body["message"]


@pytest.mark.parametrize("page", [2**62, INT64_MAX, 2**70])
def test_a_huge_page_number_is_a_400_or_an_empty_page(server: ServerProcess, page: int) -> None:
    """page * page_size overflows the database's 64-bit OFFSET: that is the client's
    problem (400) or simply an empty page, never a 500."""
    for response in (
        httpx.get(
            f"{server.url}/api/v3/predictions",
            params={"page": page},
            headers=server.auth,
            timeout=10,
        ),
        httpx.post(
            f"{server.url}/api/v3/predictions",
            json={"page": page},
            headers=server.auth,
            timeout=10,
        ),
    ):
        assert response.status_code in (200, 400), (response.request.method, response.text)
        if response.status_code == 200:
            assert response.json()["data"]["items"] == []
        else:
            assert "page" in response.json()["message"]


def test_a_webhook_whose_host_does_not_resolve_is_a_400(server: ServerProcess) -> None:
    """SPEC §1.1: webhook URLs follow the same rules as images; an entry that cannot be
    checked is a 400 naming it (as images[0] already is), not a 500."""
    response = httpx.post(
        server.url + SUBMIT,
        json={"prompt": "x", "webhook": "http://nonexistent.invalid/hook"},
        headers=server.auth,
        timeout=30,
    )
    assert_client_error(response, 400, "webhook")


def test_an_image_whose_host_does_not_resolve_is_a_400(server: ServerProcess) -> None:
    response = httpx.post(
        server.url + SUBMIT,
        json={"prompt": "x", "images": ["http://nonexistent.invalid/x.png"]},
        headers=server.auth,
        timeout=30,
    )
    assert_client_error(response, 400, "images[0]")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://0x7f000001/x.png",
        "http://2130706433/x.png",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
    ],
)
def test_private_and_non_http_image_urls_are_refused(server: ServerProcess, url: str) -> None:
    response = httpx.post(
        server.url + SUBMIT,
        json={"prompt": "x", "images": [url]},
        headers=server.auth,
        timeout=30,
    )
    assert_client_error(response, 400, "images[0]")


def test_a_file_key_with_a_newline_is_a_documented_answer(server: ServerProcess) -> None:
    """GET /api/v3/media/files/{key} documents 200, 400, 404 (and 500). A key with a
    newline must not fall through to the submit route's POST-only pattern (a 405)."""
    response = httpx.get(
        f"{server.url}/api/v3/media/files/a%0Ab",
        params={"expires": 1, "sig": "00"},
        timeout=10,
    )
    assert response.status_code in (400, 404), (response.status_code, response.text)

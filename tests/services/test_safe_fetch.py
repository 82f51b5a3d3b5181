"""The SSRF guard against real HTTP servers bound to 127.0.0.1 only."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest

from imagegate.domain.addresses import IPAddress
from imagegate.services.safe_fetch import (
    FetchError,
    FetchPolicy,
    UnsafeURLError,
    check_url,
    fetch_url,
)

pytestmark = pytest.mark.anyio

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
LOCAL = FetchPolicy(allow_private=True)
BODY = b"\x89PNG not really"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.seen: list[tuple[str, str]] = []  # (path, Host header)
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-response on purpose here (size cap, timeouts).
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunked(self, chunks: int) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(chunks):
            self.wfile.write(b"64\r\n" + b"x" * 100 + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.server.lock:
            self.server.seen.append((url.path, self.headers.get("Host", "")))
        if url.path == "/ok":
            self._send(200, BODY, Content_Type="image/png")
        elif url.path == "/host":
            self._send(200, self.headers.get("Host", "").encode())
        elif url.path == "/redirect":
            self._send(int(query.get("code", "302")), Location=query["to"])
        elif url.path == "/loop":
            self._send(302, Location="/loop")
        elif url.path == "/chain":
            left = int(query["n"])
            self._send(302, Location=f"/chain?n={left - 1}") if left else self._send(200, BODY)
        elif url.path == "/lying-length":
            # Declares far more than it sends: only a header check can say "too large".
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.close_connection = True
        elif url.path == "/drip":
            # Every read arrives well within a per-read timeout; only a deadline
            # on the whole fetch stops it.
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        elif url.path == "/chunked":
            self._chunked(int(query["chunks"]))
        else:
            self._send(404, b"nope")


def _serve(context: ssl.SSLContext | None = None) -> Iterator[_Server]:
    server = _Server(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    yield from _serve()


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A listener that completes TCP handshakes (kernel backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield listener


def _no_connection_reached(listener: socket.socket) -> bool:
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


class FakeDNS:
    """Names the test controls; any lookup of them outside the guard fails loudly."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.calls: list[str] = []

    async def getaddrinfo(self, host: str, port: int, **kwargs: Any) -> Any:
        self.calls.append(host)
        queue = self.answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port))]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()
    real_anyio, real_socket = anyio.getaddrinfo, socket.getaddrinfo

    async def patched_anyio(host: str, port: int, **kwargs: Any) -> Any:
        if host in dns.answers:
            return await dns.getaddrinfo(host, port, **kwargs)
        return await real_anyio(host, port, **kwargs)

    def guarded_socket(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in dns.answers:
            raise AssertionError(f"second lookup of {name!r}")
        return real_socket(host, *args, **kwargs)

    monkeypatch.setattr(anyio, "getaddrinfo", patched_anyio)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_socket)
    return dns


def _only(*allowed: str) -> Callable[[IPAddress], bool]:
    addresses = {ipaddress.ip_address(a) for a in allowed}
    return lambda ip: ip in addresses


# -- the happy path ----------------------------------------------------------


async def test_fetch_succeeds_with_allow_private(server: _Server) -> None:
    assert await fetch_url(f"http://127.0.0.1:{server.port}/ok", LOCAL) == BODY


async def test_fetch_uses_a_given_client(server: _Server) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        body = await fetch_url(f"http://127.0.0.1:{server.port}/ok", LOCAL, client=client)
    assert body == BODY


async def test_host_header_keeps_the_original_name(server: _Server) -> None:
    body = await fetch_url(f"http://localhost:{server.port}/host", LOCAL)
    assert body == f"localhost:{server.port}".encode()
    assert server.seen == [("/host", f"localhost:{server.port}")]


async def test_check_url_pins_a_checked_address(server: _Server) -> None:
    target = await check_url(f"http://localhost:{server.port}/ok", LOCAL)
    assert target.host == "localhost"
    assert target.port == server.port
    assert target.address.is_loopback
    assert server.seen == []


async def test_resolved_address_is_pinned_against_rebinding(
    server: _Server, fake_dns: FakeDNS
) -> None:
    # First answer passes the check; a rebinding resolver would hand out the
    # forbidden one on the lookup made for the connection.
    fake_dns.answers["images.test"] = ["127.0.0.1", "127.0.0.2"]
    policy = FetchPolicy(address_allowed=_only("127.0.0.1"))
    body = await fetch_url(f"http://images.test:{server.port}/host", policy)
    assert body == f"images.test:{server.port}".encode()
    assert fake_dns.calls == ["images.test"]


# -- refusals before any connection ------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f000001",
        "0x7f.1",
        "0177.1",
        "127.1",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::1]",
        "0.0.0.0",
        "0",
    ],
)
async def test_loopback_refused_by_default_before_connecting(
    silent: socket.socket, host: str
) -> None:
    port = silent.getsockname()[1]
    # httpx itself rejects dotted-quad spellings that are not plain decimal.
    refused = r"resolves to a (loopback|unspecified) address|Invalid IPv4 address"
    with pytest.raises(UnsafeURLError, match=refused):
        await fetch_url(f"http://{host}:{port}/ok", FetchPolicy())
    assert _no_connection_reached(silent)


async def test_refused_when_any_resolved_address_is_forbidden(
    fake_dns: FakeDNS, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def public_and_private(host: str, port: int, **kwargs: Any) -> Any:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port)),
        ]

    monkeypatch.setattr(fake_dns, "getaddrinfo", public_and_private)
    fake_dns.answers["mixed.test"] = []
    with pytest.raises(UnsafeURLError, match=r"private address \(10\.0\.0\.1\)"):
        await check_url("http://mixed.test/", FetchPolicy())


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/_x", "data:,hi"]
)
async def test_other_schemes_refused_even_with_allow_private(url: str) -> None:
    with pytest.raises(UnsafeURLError, match="is not allowed; use http or https"):
        await fetch_url(url, LOCAL)
    with pytest.raises(UnsafeURLError):
        await check_url(url, LOCAL)


async def test_unresolvable_host_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="cannot resolve"):
        await check_url("http://does-not-exist.invalid/", LOCAL)


# -- redirects ---------------------------------------------------------------


@pytest.mark.parametrize("location", ["/ok", "ok", "http://127.0.0.1:{port}/ok"])
async def test_redirects_are_followed(server: _Server, location: str) -> None:
    to = location.format(port=server.port)
    body = await fetch_url(f"http://127.0.0.1:{server.port}/redirect?code=307&to={to}", LOCAL)
    assert body == BODY


async def test_redirect_to_a_disallowed_address_is_refused(server: _Server) -> None:
    policy = FetchPolicy(address_allowed=_only("127.0.0.1"))
    base = f"http://127.0.0.1:{server.port}"
    assert await fetch_url(f"{base}/ok", policy) == BODY
    with pytest.raises(UnsafeURLError, match=r"127\.0\.0\.2"):
        await fetch_url(f"{base}/redirect?to=http://127.0.0.2:{server.port}/ok", policy)
    assert [path for path, _ in server.seen] == ["/ok", "/redirect"]


async def test_redirect_to_another_scheme_is_refused(server: _Server) -> None:
    with pytest.raises(UnsafeURLError, match="scheme 'file'"):
        await fetch_url(f"http://127.0.0.1:{server.port}/redirect?to=file:///etc/passwd", LOCAL)


async def test_redirect_loop_is_cut_off(server: _Server) -> None:
    policy = FetchPolicy(allow_private=True, max_redirects=3)
    with pytest.raises(FetchError, match=r"too many redirects \(more than 3\)"):
        await fetch_url(f"http://127.0.0.1:{server.port}/loop", policy)
    assert len(server.seen) == 4


async def test_redirect_limit_is_inclusive(server: _Server) -> None:
    url = f"http://127.0.0.1:{server.port}/chain?n=3"
    assert await fetch_url(url, FetchPolicy(allow_private=True, max_redirects=3)) == BODY
    with pytest.raises(FetchError, match="too many redirects"):
        await fetch_url(url, FetchPolicy(allow_private=True, max_redirects=2))


# -- errors, size cap, timeout -----------------------------------------------


async def test_non_2xx_is_a_fetch_error(server: _Server) -> None:
    with pytest.raises(FetchError, match=r"HTTP 404 from 127\.0\.0\.1"):
        await fetch_url(f"http://127.0.0.1:{server.port}/missing", LOCAL)


async def test_size_cap_from_content_length(server: _Server) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=500)
    with pytest.raises(FetchError, match="response larger than 500 bytes"):
        await fetch_url(f"http://127.0.0.1:{server.port}/lying-length", policy)


async def test_size_cap_on_a_chunked_body(server: _Server) -> None:
    policy = FetchPolicy(allow_private=True, max_bytes=500)
    base = f"http://127.0.0.1:{server.port}/chunked"
    assert await fetch_url(f"{base}?chunks=5", policy) == b"x" * 500
    with pytest.raises(FetchError, match="response larger than 500 bytes"):
        await fetch_url(f"{base}?chunks=50", policy)


async def test_timeout_on_a_server_that_never_answers(silent: socket.socket) -> None:
    port = silent.getsockname()[1]
    policy = FetchPolicy(allow_private=True, timeout_s=0.3)
    with anyio.fail_after(5):
        with pytest.raises(FetchError, match=r"timed out after 0\.3 s"):
            await fetch_url(f"http://127.0.0.1:{port}/ok", policy)


async def test_timeout_covers_the_whole_fetch(server: _Server) -> None:
    policy = FetchPolicy(allow_private=True, timeout_s=0.3)
    with anyio.fail_after(5), pytest.raises(FetchError, match=r"timed out after 0\.3 s"):
        await fetch_url(f"http://127.0.0.1:{server.port}/drip", policy)


async def test_connection_refused_is_a_fetch_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(FetchError, match=r"could not connect to 127\.0\.0\.1"):
            await fetch_url(f"http://127.0.0.1:{port}/ok", LOCAL)


# -- TLS still verifies the real name while dialing the pinned IP -------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=images.test",
         "-addext", "subjectAltName=DNS:images.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[_Server]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from _serve(context)


async def test_https_verifies_the_original_hostname(
    tls_server: _Server, certificate: tuple[Path, Path], fake_dns: FakeDNS
) -> None:
    fake_dns.answers["images.test"] = ["127.0.0.1"]
    fake_dns.answers["other.test"] = ["127.0.0.1"]
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    async with httpx.AsyncClient(verify=trust, trust_env=False) as client:
        body = await fetch_url(f"https://images.test:{tls_server.port}/host", LOCAL, client=client)
        assert body == f"images.test:{tls_server.port}".encode()
        with pytest.raises(FetchError, match=r"could not connect to other\.test"):
            await fetch_url(f"https://other.test:{tls_server.port}/host", LOCAL, client=client)

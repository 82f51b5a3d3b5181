"""Fetch client-supplied URLs without letting clients reach internal services.

The host is resolved once, every answer is checked, and the request goes to a
checked IP literal, so DNS rebinding between check and connect is impossible.
Redirects are followed by hand and each hop is checked again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import httpx

from imagegate.domain.addresses import (
    IPAddress,
    non_public_reason,
    parse_host_literal,
)

__all__ = [
    "FetchError",
    "FetchPolicy",
    "ResolvedTarget",
    "UnsafeURLError",
    "check_url",
    "fetch_url",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class UnsafeURLError(ValueError):
    """The URL is refused by policy (scheme or destination address)."""


class FetchError(ValueError):
    """The URL was allowed but fetching it failed."""


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    timeout_s: float = 10.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    # Replaces the address rule entirely when set (allow_private is then
    # ignored); tests use it to tell two loopback addresses apart.
    address_allowed: Callable[[IPAddress], bool] | None = None

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused under this policy, or None when allowed."""
        if self.address_allowed is not None:
            return None if self.address_allowed(ip) else "disallowed"
        if self.allow_private:
            return None
        return non_public_reason(ip)


@dataclass(frozen=True)
class ResolvedTarget:
    """A checked URL and the addresses it may be fetched from (no more lookups)."""

    url: httpx.URL
    host: str  # ASCII (IDNA) form, as sent in Host and SNI
    port: int
    addresses: tuple[IPAddress, ...]  # all checked; connect in this order

    @property
    def address(self) -> IPAddress:
        return self.addresses[0]


async def check_url(url: str | httpx.URL, policy: FetchPolicy) -> ResolvedTarget:
    """Validate ``url`` and resolve its host once.

    Raises UnsafeURLError when the scheme is not http/https or when any
    address the host resolves to is refused (a name that resolves to both a
    public and a private address is refused: the resolver may be hostile),
    and FetchError when the host does not resolve.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeURLError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in _DEFAULT_PORTS:
        raise UnsafeURLError(f"scheme {parsed.scheme!r} is not allowed; use http or https")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeURLError("URL has no host")
    port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    literal = parse_host_literal(host)
    addresses = (literal,) if literal is not None else await _resolve(host, port, policy)
    for ip in addresses:
        reason = policy.refusal(ip)
        if reason is not None:
            raise UnsafeURLError(f"host {host!r} resolves to a {reason} address ({ip})")
    return ResolvedTarget(url=parsed, host=host, port=port, addresses=addresses)


async def _resolve(host: str, port: int, policy: FetchPolicy) -> tuple[IPAddress, ...]:
    try:
        with anyio.fail_after(policy.timeout_s):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise FetchError(f"timed out resolving {host!r} after {policy.timeout_s} s") from None
    except OSError as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc}") from None
    # dict.fromkeys keeps the resolver's preference order while de-duplicating.
    found = tuple(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not found:
        raise FetchError(f"cannot resolve host {host!r}")
    return found


async def fetch_url(
    url: str, policy: FetchPolicy, *, client: httpx.AsyncClient | None = None
) -> bytes:
    """GET ``url`` under ``policy`` and return the body.

    ``timeout_s`` bounds the whole fetch (DNS, every redirect hop and the
    body), so a server trickling bytes cannot hold a worker forever. A given
    ``client`` should be dedicated to fetching: its proxy settings apply and
    would bypass the address pinning.
    """
    try:
        with anyio.fail_after(policy.timeout_s):
            if client is not None:
                return await _follow(url, policy, client)
            async with httpx.AsyncClient(
                timeout=policy.timeout_s, follow_redirects=False, trust_env=False
            ) as owned:
                return await _follow(url, policy, owned)
    except TimeoutError:
        raise FetchError(f"timed out after {policy.timeout_s} s") from None


async def _follow(url: str, policy: FetchPolicy, client: httpx.AsyncClient) -> bytes:
    current: str | httpx.URL = url
    for _hop in range(policy.max_redirects + 1):
        target = await check_url(current, policy)
        outcome = await _fetch_pinned(target, policy, client)
        if isinstance(outcome, bytes):
            return outcome
        current = outcome
    raise FetchError(f"too many redirects (more than {policy.max_redirects})")


async def _fetch_pinned(
    target: ResolvedTarget, policy: FetchPolicy, client: httpx.AsyncClient
) -> bytes | httpx.URL:
    """One hop: the body, or the absolute URL a redirect points to."""
    headers = {
        "Host": target.url.netloc.decode("ascii"),
        # Images gain nothing from gzip, and a tiny gzip body can inflate to a
        # huge one; the cap counts decoded bytes if a server compresses anyway.
        "Accept-Encoding": "identity",
    }
    extensions: dict[str, object] = {}
    if target.url.scheme == "https":
        # Verify the certificate against the real name, not the IP we dial.
        extensions["sni_hostname"] = target.host
        # A pooled TLS connection was verified for whichever name opened it;
        # never leave one behind for a different name on the same IP to reuse.
        headers["Connection"] = "close"
    last_error: httpx.ConnectError | None = None
    for ip in target.addresses:
        try:
            pinned = target.url.copy_with(host=str(ip))
            async with client.stream(
                "GET", pinned, headers=headers, extensions=extensions, follow_redirects=False
            ) as response:
                return await _read(response, target, policy)
        except httpx.ConnectError as exc:
            # Nothing was sent yet, so trying the next checked address is safe
            # (e.g. an AAAA answer on a host without IPv6 routing).
            last_error = exc
        except httpx.TimeoutException:
            raise FetchError(f"timed out after {policy.timeout_s} s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FetchError(f"could not fetch from {target.host}: {exc}") from None
    raise FetchError(f"could not connect to {target.host}: {last_error}")


async def _read(
    response: httpx.Response, target: ResolvedTarget, policy: FetchPolicy
) -> bytes | httpx.URL:
    if response.status_code in _REDIRECT_CODES and "location" in response.headers:
        # Resolve against the URL with the real host, not the pinned IP.
        try:
            return target.url.join(response.headers["location"])
        except httpx.InvalidURL as exc:
            raise UnsafeURLError(f"redirect to an invalid URL: {exc}") from None
    if not response.is_success:
        raise FetchError(f"HTTP {response.status_code} from {target.host}")
    too_large = FetchError(f"response larger than {policy.max_bytes} bytes")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > policy.max_bytes:
            raise too_large
    return bytes(body)

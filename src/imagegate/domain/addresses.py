"""Classify URL hosts and IP addresses for the SSRF guard.

Pure functions, no I/O. The fetcher resolves a host once, runs every resulting
address through :func:`is_public_address`, and connects only to an address
that passed, so these functions decide what the server may reach on behalf of
a client.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

__all__ = [
    "IPAddress",
    "is_public_address",
    "non_public_reason",
    "parse_host_literal",
]

# One inet_aton / WHATWG number: hex with 0x prefix, octal with a leading 0,
# or plain decimal. Written out in ASCII because int() would also accept
# Arabic-Indic and other Unicode digits, which no resolver treats as a number.
_HEX_PART = re.compile(r"0[xX]([0-9a-fA-F]*)")
_OCT_PART = re.compile(r"0([0-7]*)")
_DEC_PART = re.compile(r"[1-9][0-9]*")

# IDNA (RFC 3490 section 3.1) treats these as label separators, and a resolver
# that applies IDNA mapping would turn them into plain dots.
_DOT_VARIANTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})

# RFC 6598 shared address space: the ISP side of carrier-grade NAT, neither
# private nor reserved in ipaddress's terms, but never a public server.
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215 local-use NAT64 prefix: by definition it leads into a private
# network, whatever IPv4 address is embedded. Python < 3.12.4 calls it global.
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
# Deprecated forms (RFC 4291 IPv4-compatible, RFC 2765 IPv4-translated) that
# some stacks still tunnel to the embedded IPv4 address; nothing legitimate
# serves images from them, so they are refused outright.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")


def _parse_number(part: str) -> int | None:
    if m := _HEX_PART.fullmatch(part):
        # WHATWG reads a bare "0x" as zero; inet_aton does too.
        return int(m.group(1) or "0", 16)
    if m := _OCT_PART.fullmatch(part):
        return int(m.group(1) or "0", 8)
    if _DEC_PART.fullmatch(part):
        return int(part)
    return None


def _parse_ipv4_numbers(host: str) -> ipaddress.IPv4Address | None:
    parts = host.split(".")
    # A single trailing dot is the DNS root; browsers drop it before parsing.
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_parse_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    *leading, last = values
    # inet_aton rule: every part but the last is one byte; the last fills the
    # remaining bytes, so "127.1" is 127.0.0.1 and "10.1.1" is 10.1.0.1.
    if any(n > 0xFF for n in leading) or last >= 256 ** (5 - len(values)):
        return None
    value = last
    for index, n in enumerate(leading):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_host_literal(host: str) -> IPAddress | None:
    """Return the address a URL host spells, or None for a DNS name.

    Accepts every spelling that browsers or libc ``inet_aton`` turn into an
    IPv4 address (``2130706433``, ``0x7f000001``, ``0x7f.0.0.1``,
    ``0177.0.0.1``, ``127.1``, ``10.1.1``) and IPv6 with or without brackets
    (``[::ffff:127.0.0.1]``). Anything else, including malformed numbers such
    as ``256.0.0.1``, is left for the resolver, whose answers are checked too.
    """
    candidate = unicodedata.normalize("NFKC", host.strip()).translate(_DOT_VARIANTS)
    if not candidate.isascii():
        return None
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    if ":" in candidate:
        # URLs percent-encode the zone separator: fe80::1%25eth0.
        candidate = candidate.replace("%25", "%", 1)
        try:
            return ipaddress.IPv6Address(candidate)
        except ValueError:
            return None
    return _parse_ipv4_numbers(candidate)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def non_public_reason(ip: IPAddress) -> str | None:
    """Say why ``ip`` must not be fetched from (e.g. ``"private"``), or None.

    IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, NAT64) are
    judged by the IPv4 address they lead to, so ``::ffff:10.0.0.1`` is
    private just like ``10.0.0.1``.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return non_public_reason(embedded)
        if ip in _NAT64_LOCAL_USE:
            return "private"
        if (
            not ip.is_loopback
            and not ip.is_unspecified
            and (ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED)
        ):
            return "reserved"
        if ip.is_site_local:
            return "site-local"
    # is_private also covers loopback, link-local, unspecified and reserved
    # ranges, so it goes last: the precise name makes a better error message.
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    )
    for reason, matched in checks:
        if matched:
            return reason
    if ip in _SHARED:
        return "carrier-grade NAT"
    # Catch-all for ranges the checks above do not name (and for whatever
    # later Python releases add to the special-purpose registry).
    if not ip.is_global:
        return "non-public"
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True when ``ip`` is a public unicast address the server may connect to."""
    return non_public_reason(ip) is None

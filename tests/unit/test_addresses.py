from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate.domain.addresses import (
    IPAddress,
    is_public_address,
    non_public_reason,
    parse_host_literal,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", V4("127.0.0.1")),
        ("2130706433", V4("127.0.0.1")),
        ("0x7f000001", V4("127.0.0.1")),
        ("0X7F000001", V4("127.0.0.1")),
        ("0x7f.0.0.1", V4("127.0.0.1")),
        ("0x7f.0x0.0x0.0x1", V4("127.0.0.1")),
        ("0177.0.0.1", V4("127.0.0.1")),
        ("017700000001", V4("127.0.0.1")),
        ("0177.0.0.01", V4("127.0.0.1")),
        ("127.1", V4("127.0.0.1")),
        ("127.0.1", V4("127.0.0.1")),
        ("10.1.1", V4("10.1.0.1")),
        ("10.65536", V4("10.1.0.0")),
        ("127.0.0.1.", V4("127.0.0.1")),
        ("0", V4("0.0.0.0")),
        ("0x", V4("0.0.0.0")),
        ("169.254.169.254", V4("169.254.169.254")),
        ("2852039166", V4("169.254.169.254")),
        ("4294967295", V4("255.255.255.255")),
        ("[::1]", V6("::1")),
        ("::1", V6("::1")),
        ("[::ffff:127.0.0.1]", V6("::ffff:127.0.0.1")),
        ("[::ffff:7f00:1]", V6("::ffff:127.0.0.1")),
        ("[fe80::1%25eth0]", V6("fe80::1%eth0")),
        # NFKC / IDNA mapping turns full-width digits and dots into ASCII.
        ("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", V4("127.0.0.1")),
        ("127\u30020\u30020\u30021", V4("127.0.0.1")),
    ],
)
def test_parse_host_literal_spellings(host: str, expected: IPAddress) -> None:
    assert parse_host_literal(host) == expected


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "images.example.org.",
        "0x7g.0.0.1",
        "08.0.0.1",
        "256.0.0.1",
        "1.2.3.4.5",
        "4294967296",
        "1.2.65536",
        "-1.0.0.1",
        "+1.0.0.1",
        "1..2.3",
        "",
        "[not-an-ip]",
        "\u0661\u0662\u0667.0.0.1",  # Arabic-Indic digits are not numbers to a resolver
        "b\u00fccher.de",
    ],
)
def test_parse_host_literal_leaves_names_alone(host: str) -> None:
    assert parse_host_literal(host) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("169.254.0.1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "private"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::10.0.0.1", "private"),
        ("64:ff9b::127.0.0.1", "loopback"),
        ("64:ff9b:1::8.8.8.8", "private"),
        ("2002:0a00:0001::1", "private"),
        ("2002:7f00:0001::", "loopback"),
        ("2002:a9fe:a9fe::1", "link-local"),
        ("::10.0.0.1", "reserved"),
        ("::127.0.0.1", "reserved"),
        ("::8.8.8.8", "reserved"),
        ("::ffff:0:10.0.0.1", "reserved"),
        ("2001:db8::1", "private"),
    ],
)
def test_forbidden_addresses(address: str, reason: str) -> None:
    ip = ipaddress.ip_address(address)
    assert non_public_reason(ip) == reason
    assert not is_public_address(ip)


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:0808:0808::1",
    ],
)
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# -- every spelling of an address means the same thing -----------------------


def _spellings(ip: ipaddress.IPv4Address) -> list[str]:
    value = int(ip)
    octets = ip.packed
    return [
        str(ip),
        str(value),
        hex(value),
        "0" + oct(value)[2:],
        ".".join(hex(o) for o in octets),
        ".".join("0" + oct(o)[2:] for o in octets),
        f"{octets[0]}.{value & 0xFFFFFF}",
        f"{octets[0]}.{octets[1]}.{value & 0xFFFF}",
        str(ip) + ".",
        f"[::ffff:{ip}]",
        f"[::ffff:{value >> 16:x}:{value & 0xFFFF:x}]",
    ]


def _addresses_in(network: str) -> st.SearchStrategy[ipaddress.IPv4Address]:
    net = ipaddress.IPv4Network(network)
    return st.integers(int(net.network_address), int(net.broadcast_address)).map(
        ipaddress.IPv4Address
    )


_FORBIDDEN_V4 = st.one_of(
    *(
        _addresses_in(n)
        for n in (
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "224.0.0.0/4",
            "240.0.0.0/4",
        )
    )
)


def _judge(host: str) -> bool:
    ip = parse_host_literal(host)
    assert ip is not None, host
    return is_public_address(ip)


@given(_FORBIDDEN_V4)
def test_every_spelling_of_a_forbidden_address_is_refused(ip: ipaddress.IPv4Address) -> None:
    for spelling in _spellings(ip):
        assert not _judge(spelling), spelling
    for wrapped in (f"64:ff9b::{ip}", f"2002:{int(ip) >> 16:x}:{int(ip) & 0xFFFF:x}::1"):
        assert not _judge(wrapped), wrapped


@given(st.sampled_from(["8.8.8.8", "1.1.1.1", "9.9.9.9", "93.184.215.14", "151.101.1.69"]))
def test_every_spelling_of_a_public_address_is_allowed(address: str) -> None:
    for spelling in _spellings(ipaddress.IPv4Address(address)):
        assert _judge(spelling), spelling


@given(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
def test_spellings_agree_for_any_address(ip: ipaddress.IPv4Address) -> None:
    expected = is_public_address(ip)
    for spelling in _spellings(ip):
        parsed = parse_host_literal(spelling)
        assert parsed is not None, spelling
        unwrapped = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else parsed
        assert unwrapped == ip, spelling
        assert is_public_address(parsed) is expected, spelling

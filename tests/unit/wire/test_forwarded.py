"""Client-address headers of forwarded requests (lb.wire.forwarded) and the CIDR matcher."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lb.wire.forwarded import (
    FORWARDING_HEADERS,
    ForwardedHeaders,
    TrustedProxies,
    forwarded_headers,
    forwarded_node,
)
from lb.wire.http import RequestHead, parse_request_head


def parsed(raw: bytes) -> RequestHead:
    head = parse_request_head(raw, 65536)
    assert head is not None
    return head


def rewrite(raw: bytes, ip: str = "192.0.2.7", proto: str = "http", trusted: bool = False) -> bytes:
    return ForwardedHeaders(ip, proto, trusted).rewrite(parsed(raw), raw)


def test_plain_request_gets_the_three_headers_at_the_end() -> None:
    raw = b"GET /a HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\n\r\n"
    assert rewrite(raw) == (
        b"GET /a HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\n"
        b"X-Forwarded-For: 192.0.2.7\r\n"
        b"X-Forwarded-Proto: http\r\n"
        b"Forwarded: for=192.0.2.7;proto=http\r\n"
        b"\r\n"
    )


def test_ipv6_is_quoted_and_bracketed_in_forwarded_only() -> None:
    out = rewrite(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ip="2001:db8:0::1", proto="https")
    assert b"X-Forwarded-For: 2001:db8::1\r\n" in out
    assert b'Forwarded: for="[2001:db8::1]";proto=https\r\n' in out
    assert forwarded_node("2001:db8::1") == '"[2001:db8::1]"'
    assert forwarded_node("::ffff:192.0.2.1") == "192.0.2.1"  # a dual-stack socket's IPv4


def test_untrusted_client_values_are_removed_in_any_case() -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost: x\r\nx-forwarded-for: 6.6.6.6\r\nX-FORWARDED-PROTO: https\r\n"
        b"Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\n"
        b"True-Client-IP: 6.6.6.6\r\nx-client-ip: 6.6.6.6\r\nCLIENT-IP: 6.6.6.6\r\n"
        b"X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /evil\r\nX-Forwarded-Ssl: on\r\n"
        b"X-Forwarded-Server: evil\r\nX-Forwarded-Scheme: https\r\nX-Url-Scheme: https\r\n"
        b"Front-End-Https: on\r\nX-Forwarded-Hostname: kept\r\nAccept: */*\r\n\r\n"
    )
    out = rewrite(raw)
    assert b"6.6.6.6" not in out and b"https" not in out and b"evil" not in out
    assert parsed(out).headers == [
        ("Host", "x"),
        ("X-Forwarded-Hostname", "kept"),
        ("Accept", "*/*"),
        ("X-Forwarded-For", "192.0.2.7"),
        ("X-Forwarded-Proto", "http"),
        ("Forwarded", "for=192.0.2.7;proto=http"),
    ]


def test_trusted_proxy_chain_is_extended() -> None:
    raw = (
        b"GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.1, 10.9.9.9\r\nHost: x\r\n"
        b"X-Forwarded-For: 10.8.8.8\r\nForwarded: for=203.0.113.1;proto=https\r\n"
        b"X-Forwarded-Proto: https\r\nX-Real-IP: 203.0.113.1\r\n\r\n"
    )
    out = parsed(rewrite(raw, ip="10.0.0.2", trusted=True))
    assert out.headers == [
        ("Host", "x"),
        ("X-Forwarded-Proto", "https"),  # the original scheme, as the proxy saw it
        ("X-Real-IP", "203.0.113.1"),
        ("X-Forwarded-For", "203.0.113.1, 10.9.9.9, 10.8.8.8, 10.0.0.2"),
        ("Forwarded", "for=203.0.113.1;proto=https, for=10.0.0.2;proto=http"),
    ]


def test_trusted_proxy_vouches_for_host_port_and_client_headers() -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: shop.example\r\n"
        b"X-Forwarded-Port: 443\r\nTrue-Client-IP: 203.0.113.1\r\nX_Forwarded_Host: no\r\n\r\n"
    )
    out = parsed(rewrite(raw, ip="10.0.0.2", trusted=True))
    assert out.headers == [
        ("Host", "x"),
        ("X-Forwarded-Host", "shop.example"),
        ("X-Forwarded-Port", "443"),
        ("True-Client-IP", "203.0.113.1"),
        ("X-Forwarded-For", "10.0.0.2"),
        ("X-Forwarded-Proto", "http"),
        ("Forwarded", "for=10.0.0.2;proto=http"),
    ]


def test_trusted_proxy_without_headers_is_treated_as_the_client() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert rewrite(raw, trusted=True) == rewrite(raw, trusted=False)


def test_only_the_head_is_returned_and_start_is_honoured() -> None:
    first = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"POST /2 HTTP/1.1\r\nHost: x\r\nX-Real-IP: 1.1.1.1\r\nContent-Length: 2\r\n\r\nhi"
    buf = bytearray(first + second)
    head = parsed(second)
    out = ForwardedHeaders("192.0.2.7", "http", False).rewrite(head, buf, start=len(first))
    assert out == rewrite(second[: head.length])
    assert out.startswith(b"POST /2") and out.endswith(b"\r\n\r\n") and b"hi" not in out


def test_leading_empty_lines_are_kept() -> None:
    raw = b"\r\nGET / HTTP/1.1\r\nX-Real-IP: 6.6.6.6\r\n\r\n"
    out = rewrite(raw)
    assert out.startswith(b"\r\nGET / HTTP/1.1\r\nX-Forwarded-For: 192.0.2.7\r\n")


def test_shared_form_and_bad_arguments() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert forwarded_headers("192.0.2.7", "http", False).rewrite(parsed(raw), raw) == rewrite(raw)
    with pytest.raises(ValueError):
        ForwardedHeaders("192.0.2.7", "ftp", False)
    with pytest.raises(ValueError):
        ForwardedHeaders("192.0.2.7\r\nX: y", "http", False)


# -- properties against a model over the parsed headers -----------------------------

_NAMES = ["Host", "Accept", "Cookie", "X-Forwarded-Hosts", "Forwarded-X", "X-Real-IPs", "Via"]
_NAMES += [n for n in FORWARDING_HEADERS] + [n.upper() for n in FORWARDING_HEADERS]
_NAMES += ["X-Forwarded-For", "X-Forwarded-Proto", "Forwarded", "X-Real-Ip"]
values = st.text('abc019.:, ;="[]-\t', max_size=20).map(lambda v: v.strip(" \t"))
headers = st.lists(st.tuples(st.sampled_from(_NAMES), values), max_size=12)
clients = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


def _model(
    hdrs: list[tuple[str, str]], ip: str, proto: str, trusted: bool
) -> list[tuple[str, str]]:
    node = forwarded_node(ip)
    xff_ip = node.strip('"[]')
    kept: list[tuple[str, str]] = []
    xff: list[str] = []
    fwd: list[str] = []
    proto_sent = False
    for name, value in hdrs:
        low = name.lower()
        if low not in FORWARDING_HEADERS:
            kept.append((name, value))
        elif trusted and low == "x-forwarded-for":
            xff.append(value)
        elif trusted and low == "forwarded":
            fwd.append(value)
        elif trusted:
            kept.append((name, value))
            proto_sent = proto_sent or low == "x-forwarded-proto"
    kept.append(("X-Forwarded-For", ", ".join(v for v in [*xff, xff_ip] if v)))
    if not proto_sent:
        kept.append(("X-Forwarded-Proto", proto))
    kept.append(("Forwarded", ", ".join(v for v in [*fwd, f"for={node};proto={proto}"] if v)))
    return kept


@given(headers, clients, st.sampled_from(["http", "https"]), st.booleans(), st.binary(max_size=8))
def test_rewrite_matches_the_model(
    hdrs: list[tuple[str, str]], ip: str, proto: str, trusted: bool, body: bytes
) -> None:
    raw = b"GET /p HTTP/1.1\r\n" + b"".join(f"{n}: {v}\r\n".encode() for n, v in hdrs) + b"\r\n"
    head = parsed(raw)
    out = ForwardedHeaders(ip, proto, trusted).rewrite(head, bytearray(raw + body))
    again = parsed(out)
    assert again.length == len(out)
    assert (again.method, again.target) == ("GET", "/p")
    assert again.headers == _model(head.headers, ip, proto, trusted)


# -- TrustedProxies -----------------------------------------------------------------


def test_trusted_proxies_matches_cidrs() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"])
    assert trusted.contains("10.255.0.1")
    assert trusted.contains("192.168.1.200")
    assert not trusted.contains("192.168.2.1")
    assert trusted.contains("2001:db8:ffff::1")
    assert not trusted.contains("2001:db9::1")
    assert trusted.contains("::ffff:10.1.1.1")  # a dual-stack socket's IPv4 client
    assert not trusted.contains("not an ip")
    assert trusted


def test_empty_trusted_proxies_trust_nobody() -> None:
    nobody = TrustedProxies()
    assert not nobody
    assert not nobody.contains("10.0.0.1")


def test_trusted_proxies_refuse_bad_cidrs() -> None:
    for bad in ("10.0.0.1/8", "10.0.0.0/33", "ten"):
        with pytest.raises(ValueError):
            TrustedProxies([bad])


@given(
    st.one_of(st.ip_addresses(), st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}")),
    st.lists(st.ip_addresses(), max_size=4),
    st.integers(0, 128),
)
def test_trusted_proxies_agree_with_ipaddress(
    text: object, nets: list[IPv4Address | IPv6Address], bits: int
) -> None:
    networks = [ip_network(f"{n}/{min(bits, n.max_prefixlen)}", strict=False) for n in nets]
    matcher = TrustedProxies(str(n) for n in networks)
    ip = ip_address(str(text))
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # matched as the IPv4 address it carries
    assert matcher.contains(str(text)) == any(ip in n for n in networks)


def test_forwarded_headers_are_shared_by_one_address() -> None:
    """Connections of one client address hold one object (an idle connection keeps no copy)."""
    first = forwarded_headers("192.0.2.7", "http", False)
    assert forwarded_headers("192.0.2.7", "http", False) is first
    assert forwarded_headers("192.0.2.7", "https", False) is not first
    assert forwarded_headers("192.0.2.8", "http", False) is not first
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1024)
    assert head is not None
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert first.rewrite(head, raw) == ForwardedHeaders("192.0.2.7", "http", False).rewrite(
        head, raw
    )

"""Fuzz target for lb.wire.proxy and lb.wire.forwarded (atheris).

Not a pytest module. Run it through tests/fuzz/run.sh, or alone after `pip install atheris`:

    .venv/bin/python tests/fuzz/fuzz_proxy.py --write-seeds /tmp/seeds-proxy
    .venv/bin/python tests/fuzz/fuzz_proxy.py -max_total_time=60 /tmp/corpus /tmp/seeds-proxy

Checks, for any input:

- decode_proxy_v2 returns None, a ProxyHeader or raises ProxyHeaderError (nothing
  else); a decided prefix stays decided, whatever follows, for any growing split of
  the stream; a buffer of ``max_bytes`` bytes is always decided, and a header is never
  longer than ``max_bytes``; a decoded header re-encodes (encode_proxy_v2 of its
  addresses) to a header that decodes to the same addresses;
- the same input read as an HTTP request head: when it parses (with room for the
  three lines lb adds under MAX_HEADER_LINES), ForwardedHeaders gives a head that
  parses again, ends at its own CRLFCRLF, keeps the request line, and,
  for an untrusted client, carries exactly one X-Forwarded-For (the client) and no
  vouched header (X-Real-IP, X-Forwarded-Host, ...) in any spelling.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from lb.errors import HttpError, ProxyHeaderError
    from lb.wire.forwarded import VOUCHED_HEADERS, ForwardedHeaders
    from lb.wire.http import MAX_HEADER_LINES, parse_request_head
    from lb.wire.proxy import (
        ProxyHeader,
        decode_proxy_v2,
        encode_proxy_v2,
        encode_proxy_v2_local,
    )

CLIENTS = ("192.0.2.7", "2001:db8::7")


def _outcome(data: bytes, max_bytes: int) -> ProxyHeader | str | None:
    try:
        return decode_proxy_v2(data, max_bytes)
    except ProxyHeaderError:
        return "error"


def _check_proxy(data: bytes, max_bytes: int, sizes: list[int]) -> None:
    whole = _outcome(data, max_bytes)
    buf = bytearray()
    first: object = None
    pos = 0
    for size in [*sizes, len(data)]:
        buf += data[pos : pos + size]
        pos += size
        got = _outcome(bytes(buf), max_bytes)
        if first is None:
            first = got
        elif got != first:
            raise AssertionError(f"decided {first!r}, then {got!r}")
        if pos >= len(data):
            break
    assert first == whole, (first, whole)
    if len(data) >= max_bytes:
        assert whole is not None, "a buffer of max_bytes bytes is undecided"
    if isinstance(whole, ProxyHeader):
        assert whole.length <= max_bytes
        assert _outcome(data[: whole.length], max_bytes) == whole
        if whole.source is not None and whole.destination is not None:
            again = encode_proxy_v2(whole.source, whole.destination)
            decoded = decode_proxy_v2(again)
            assert decoded is not None
            assert (decoded.source, decoded.destination) == (whole.source, whole.destination)


def _check_forwarded(data: bytes, trusted: bool, client: str) -> None:
    try:
        head = parse_request_head(data, 4096)
    except HttpError:
        return
    if head is None:
        return
    out = ForwardedHeaders(client, "https", trusted).rewrite(head, data)
    if len(head.headers) + 3 > MAX_HEADER_LINES:
        return  # lb's own 100-line bound would refuse the longer head (docs/fuzzing.md)
    again = parse_request_head(out, 8192)
    assert again is not None and again.length == len(out), "the rewritten head does not parse"
    assert (again.method, again.target, again.version) == (head.method, head.target, head.version)
    if not trusted:
        names = [k.lower().replace("_", "-") for k, _ in again.headers]
        assert names.count("x-forwarded-for") == 1
        assert not set(names) & set(VOUCHED_HEADERS)
        assert again.header("X-Forwarded-For") == client


def test_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    max_bytes = fdp.ConsumeIntInRange(16, 700)
    trusted = fdp.ConsumeBool()
    client = CLIENTS[fdp.ConsumeIntInRange(0, 1)]
    sizes = [fdp.ConsumeIntInRange(1, 64) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    data = fdp.ConsumeBytes(fdp.remaining_bytes())
    _check_proxy(data, max_bytes, sizes)
    _check_forwarded(data, trusted, client)


SEEDS = [
    encode_proxy_v2(("192.0.2.1", 56324), ("198.51.100.2", 443)) + b"GET / HTTP/1.1\r\n",
    encode_proxy_v2(("2001:db8::1", 1), ("2001:db8::2", 2), [(0x02, b"example.com")]),
    encode_proxy_v2_local(),
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\nforwarded: for=1.2.3.4\r\n\r\n",
    b"POST /p HTTP/1.0\r\nX-Real-IP: 1.1.1.1\r\nX-FORWARDED-PROTO: http\r\n\r\nbody",
    b"GET / HTTP/1.1\r\nx_forwarded_host: e\r\nTrue-Client-IP: 1\r\nClient-IP: 2\r\n\r\n",
]


def write_seeds(folder: str) -> None:
    """Seed inputs, then the bytes the FuzzedDataProvider takes from the end
    (no chunking, client 0, untrusted, max_bytes 536)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(SEEDS):
        (out / f"seed-{i:02d}").write_bytes(seed + b"\x00\x00\x00\x02\x08")


def main() -> None:
    if sys.argv[1:2] == ["--write-seeds"]:
        write_seeds(sys.argv[2])
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

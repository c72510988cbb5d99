"""Fuzz target for lb.wire.http and lb.wire.response_head (atheris): request and response heads.

Not a pytest module. Run it after `pip install atheris`:

    .venv/bin/python tests/fuzz/fuzz_http_head.py -max_total_time=60

Checks, for any input: parse_request_head returns None or a RequestHead or raises
HttpError 400/431 (nothing else); a decided prefix stays decided; a parsed head
parses the same from its own bytes, and its accessors agree with its fields
(``header`` finds the first header of a name, ``cookies`` keeps token names from
Cookie headers only, ``path``/``query`` split the target). parse_response_head
returns None or a ResponseHead or raises HttpError 502, a decided prefix stays
decided, and where llhttp answers for a complete head its answer is the own
scanner's. Where a quick pass (`_parse_fast`, `_fast_response_head`) decides a
head, the full check gives the same head. In the compiled build, the C scan
(lb.wire._headscan) answers what the regex scan answers, at any start and stop.
parse_set_cookie never raises and returns a token name.

``max_bytes`` is drawn from FUZZ_HTTP_MIN_MAX_BYTES (default 1) to 4096. With
max_bytes below 6 the decided-prefix check fails today: a short prefix of
b"\r\n\r\n\r\n" is a 431, the whole a 400 (the leading empty lines are counted
past max_bytes); see docs/fuzzing.md. lb itself never uses a limit under 1024.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from lb.errors import HttpError
    from lb.wire import http, response_head
    from lb.wire.http import (
        NOT_CONTROL_BYTES,
        RequestHead,
        parse_request_head,
        parse_set_cookie,
    )

MIN_MAX_BYTES = int(os.environ.get("FUZZ_HTTP_MIN_MAX_BYTES", "1"))
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token


def _outcome(data: bytes, max_bytes: int) -> RequestHead | int | None:
    try:
        return parse_request_head(data, max_bytes)
    except HttpError as exc:
        if exc.status not in (400, 431):
            raise AssertionError(f"unexpected status {exc.status}") from exc
        return exc.status


def _response(data: bytes, max_head: int) -> response_head.ResponseHead | int | None:
    try:
        return response_head.parse_response_head(data, 0, max_head)
    except HttpError as exc:
        if exc.status != 502:
            raise AssertionError(f"unexpected status {exc.status}") from exc
        return exc.status


def _check_head(head: RequestHead) -> None:
    for name, value in head.headers:
        first = next(v for k, v in head.headers if k.lower() == name.lower())
        assert head.header(name) == first == head.header(name.upper()), (name, value)
    cookie_values = [v for k, v in head.headers if k.lower() == "cookie"]
    for name, value in head.cookies().items():
        assert TOKEN.fullmatch(name) is not None, name
        assert any(name in v and value in v for v in cookie_values), (name, value)
    assert head.query == head.target.partition("?")[2]
    path = head.path
    assert path == "" or path.startswith("/"), path
    assert "?" not in path, path


def _quick_passes_agree(data: bytes, max_bytes: int, max_head: int) -> None:
    """Where a quick pass decides a head, the full check decides it the same way."""
    n = min(len(data), max_bytes)
    try:
        pos = http._skip_empty_lines(data, n) if data.startswith(b"\r\n") else 0
    except HttpError:
        pos = -1
    quick = http._parse_fast(data, pos, n) if pos >= 0 else None
    if quick is not None:
        end = data.find(b"\r\n\r\n", pos, n)
        assert end >= 0, quick
        assert http._parse_complete(data[pos:end], end + 4) == quick, quick
    quick_response = response_head._fast_response_head(data, 0, min(len(data), max_head))
    if quick_response is not None:
        full = response_head._checked_response_head(data, 0, max_head)
        assert full == quick_response, (full, quick_response)


try:
    from lb.wire import _headscan
except ImportError:  # the pure build: its quick pass is the regex scan itself
    _headscan = None


def _c_scan_is_the_regex_scan(data: bytes, start: int, stop: int) -> None:
    if _headscan is None:
        return
    assert _headscan.scan_request(data, start, stop) == http._regex_scan_request(data, start, stop)
    assert _headscan.scan_response(data, start, stop) == response_head._regex_scan_response(
        data, start, stop
    )


def test_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    max_bytes = fdp.ConsumeIntInRange(MIN_MAX_BYTES, 4096)
    cut = fdp.ConsumeIntInRange(0, 4096)
    data = fdp.ConsumeBytes(fdp.remaining_bytes())

    result = _outcome(data, max_bytes)
    if isinstance(result, RequestHead):
        assert data[result.length - 4 : result.length] == b"\r\n\r\n"
        assert _outcome(data[: result.length], max_bytes) == result
        _check_head(result)
    prefix = _outcome(data[: min(cut, len(data))], max_bytes)
    if prefix is not None:
        assert prefix == result, (prefix, result)

    max_head = max(16, max_bytes)
    _c_scan_is_the_regex_scan(data, 0, len(data))
    _c_scan_is_the_regex_scan(data, min(cut % 8, len(data)), min(cut, len(data)))
    _quick_passes_agree(data, max_bytes, max_head)
    response = _response(data, max_head)
    decided = _response(data[: min(cut, len(data))], max_head)
    if decided is not None:
        assert decided == response, (decided, response)
    end = data.find(b"\r\n\r\n")
    raw = data[:end]
    if end >= 0 and len(raw.translate(None, NOT_CONTROL_BYTES)) == 2 * raw.count(b"\r\n"):
        fast = response_head.llhttp_response_head(data[: end + 4])
        try:
            reference: object = response_head.own_response_head(raw)
        except HttpError:
            reference = None
        assert fast is None or fast == reference, (fast, reference)
    parsed = parse_set_cookie(data.decode("latin-1"))
    if parsed is not None:
        assert TOKEN.fullmatch(parsed[0]) is not None, parsed


SEEDS = [
    b"GET /a/b?x=1 HTTP/1.1\r\nHost: example\r\nCookie: lbhome=1.x; sid=abc\r\n\r\n",
    b"\r\nPOST http://h/p?q HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    b"OPTIONS * HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: sid=1; Max-Age=60\r\n\r\nbody",
    b"HTTP/1.0 302 Found\r\nSet-Cookie: lbhome=v; Path=/\r\nLocation: /\r\n\r\n",
]


def write_seeds(folder: str) -> None:
    """Seed inputs: request heads and response streams, then the bytes the
    FuzzedDataProvider takes from the end (no chunking, no prefix cut, max_bytes 4096)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(SEEDS):
        (out / f"seed-{i:02d}").write_bytes(seed + b"\x00\xff\xff\x0f\xff")


def main() -> None:
    if sys.argv[1:2] == ["--write-seeds"]:
        write_seeds(sys.argv[2])
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

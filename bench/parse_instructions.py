"""Machine instructions per call of the HTTP head parsers on lb's per-request path.

A script, not a test: ``.venv/bin/python bench/parse_instructions.py``. Runs itself
twice under valgrind's callgrind for each parser (N and 3N calls) and prints the
instructions per call, the difference over 2N: ``parse_request_head`` on a usual
browser-like request head, ``parse_response_head`` on an nginx response head, and
``request_framing`` on the parsed request. Counts do not move with the machine's
load (timings here spread by 10-20 %). Run it after ``scripts/compile.sh`` for the
compiled build, after ``scripts/compile.sh --clean`` for pure Python. Needs valgrind.
"""

from __future__ import annotations

import argparse

from callgrind_count import per_call

from lb.wire.http import parse_request_head
from lb.wire.http1 import request_framing
from lb.wire.response_head import parse_response_head

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: shop.example\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Cookie: lbhome=a.1767225600.0123456789abcdef0123456789abcdef\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 11:39:13 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\nnode=a\n"
)
WHAT = ("request", "response", "framing")


def run(what: str, n: int) -> None:
    """Call one parser n times (the measured loop)."""
    request = bytearray(REQUEST)  # a client's bytes accumulate in a bytearray
    response = RESPONSE  # a response head usually comes in one read, as bytes
    if what == "request":
        for _ in range(n):
            parse_request_head(request, 65536)
    elif what == "response":
        for _ in range(n):
            parse_response_head(response, 0, 65536)
    else:
        head = parse_request_head(request, 65536)
        assert head is not None
        for _ in range(n):
            request_framing(head)


def count(what: str, n: int) -> float:
    return per_call(lambda calls: [__file__, "--run", what, "--calls", str(calls)], n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--run", choices=WHAT, help="run one parser (under callgrind)")
    parser.add_argument("--only", choices=WHAT, action="append")
    args = parser.parse_args()
    if args.run:
        run(args.run, args.calls)
        return
    for what in args.only or WHAT:
        print(f"{what}: {count(what, args.calls):,.0f} instructions per call")


if __name__ == "__main__":
    main()

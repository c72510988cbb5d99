"""Microbenchmark of the per-request client-address rewrite (lb.wire.forwarded).

A script, not a test: ``.venv/bin/python bench/micro_forwarded.py [--quick]``.
Prints the best and median nanoseconds per request head for ForwardedHeaders.rewrite
(the object made once) and forwarded_headers(...).rewrite (the shared object looked up first),
with request heads a browser, an API client and a trusted CDN send, and the
parse_request_head of the same head for scale. Pure core only (no I/O); numbers are
for comparing versions of lb on one machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

from lb.wire.forwarded import ForwardedHeaders, forwarded_headers
from lb.wire.http import RequestHead, parse_request_head

BROWSER = (
    b"GET /cart/17?page=2 HTTP/1.1\r\n"
    b"Host: shop.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: lbhome=bm9kZS0xOjE3MDAwMDAwMDA6YWJjZGVm; sid=42\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"\r\n"
)
API = b"GET /v1/items/9 HTTP/1.1\r\nHost: api.example.com\r\nAccept: */*\r\n\r\n"
CDN = (
    b"GET /cart/17 HTTP/1.1\r\n"
    b"Host: shop.example.com\r\n"
    b"User-Agent: Mozilla/5.0\r\n"
    b"Accept: */*\r\n"
    b"Cookie: lbhome=bm9kZS0xOjE3MDAwMDAwMDA6YWJjZGVm\r\n"
    b"X-Forwarded-For: 203.0.113.7\r\n"
    b"X-Forwarded-Proto: https\r\n"
    b"Forwarded: for=203.0.113.7;proto=https\r\n"
    b"\r\n"
)


def per_call_ns(fn: Callable[[], object], calls: int, repeats: int) -> tuple[float, float]:
    """(best, median) CPU nanoseconds of this thread per call of ``fn`` over ``repeats`` runs
    of ``calls`` calls (thread CPU time: other jobs on a busy machine count less)."""
    samples = []
    for _ in range(repeats):
        start = time.thread_time_ns()
        for _ in range(calls):
            fn()
        samples.append((time.thread_time_ns() - start) / calls)
    return min(samples), statistics.median(samples)


def _shared_rewrite(head: RequestHead, buf: bytearray, ip: str, trusted: bool) -> bytes:
    """What a connection's first request pays: the shared object looked up, then used."""
    return forwarded_headers(ip, "http", trusted).rewrite(head, buf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    calls, repeats = (2000, 3) if args.quick else (100000, 7)
    cases = [
        ("browser head, untrusted client", BROWSER, "198.51.100.23", False),
        ("api head, untrusted IPv6 client", API, "2001:db8::17", False),
        ("CDN head, trusted proxy (chain extended)", CDN, "10.1.2.3", True),
        ("CDN head, untrusted client (headers removed)", CDN, "198.51.100.23", False),
    ]
    print(f"{'case':48} {'best ns':>9} {'median ns':>10}")
    for label, raw, ip, trusted in cases:
        buf = bytearray(raw)  # as a client connection holds it
        head = parse_request_head(buf, 16384)
        assert head is not None
        fwd = ForwardedHeaders(ip, "http", trusted)
        best, median = per_call_ns(partial(fwd.rewrite, head, buf), calls, repeats)
        print(f"{'rewrite: ' + label:48} {best:9.0f} {median:10.0f}")

        call = partial(_shared_rewrite, head, buf, ip, trusted)
        best, median = per_call_ns(call, calls, repeats)
        print(f"{'forwarded_headers + rewrite: ' + label:48} {best:9.0f} {median:10.0f}")
        best, median = per_call_ns(partial(parse_request_head, buf, 16384), calls, repeats)
        print(f"{'(parse_request_head of it)':48} {best:9.0f} {median:10.0f}")


if __name__ == "__main__":
    main()

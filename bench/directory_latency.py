"""Latency the directory owners add (issue 11), through a real 3-node farm on loopback.

A script, not a test: ``.venv/bin/python -m bench.directory_latency [--n 300]``.

* **first response**: a request without a session cookie; the application sets
  ``sid`` and the home holds the response until the key's owners acknowledged.
  Compared with a later request of the same session (a directory hit, no
  registration), through random entries, a new TCP connection each.
* **lookup miss**: a request carrying a ``sid`` no node knows: the entry asks the
  key's owners (one link round trip), then places a new session. Compared with a
  request whose ``sid`` every node knows.

It prints p50/p99 in milliseconds. It must not change lb.
"""

from __future__ import annotations

import argparse
import http.client
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from tests.support.farm import Farm

CHAIN = '[ { kind = "cookie", name = "sid" }, { kind = "home-cookie" } ]'


def timed_get(farm: Farm, entry: str, cookie: str | None) -> tuple[float, str | None]:
    host, port = farm.addr(entry)
    t = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        resp.read()
        took = time.perf_counter() - t
        sid = next(
            (
                v.split(";")[0]
                for k, v in resp.getheaders()
                if k.lower() == "set-cookie" and v.startswith("sid=")
            ),
            None,
        )
        assert resp.status == 200
        return took, sid
    finally:
        conn.close()


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        farm = Farm(Path(tmp), services={"web": ("http", CHAIN)})
        try:
            farm.start()
            first, later, miss, hit = [], [], [], []
            sids = []
            for _ in range(args.n):
                took, sid = timed_get(farm, rng.choice(farm.nodes), None)
                first.append(took)
                assert sid is not None
                sids.append(sid)
                took, _ = timed_get(farm, rng.choice(farm.nodes), sid)
                later.append(took)
            time.sleep(0.5)
            for sid in sids:
                took, _ = timed_get(farm, rng.choice(farm.nodes), sid)
                hit.append(took)
                took, _ = timed_get(farm, rng.choice(farm.nodes), f"sid={secrets.token_hex(8)}")
                miss.append(took)
            for name, values in (
                ("first response (registers)", first),
                ("later response (hit)", later),
                ("known sid (hit)", hit),
                ("unknown sid (lookup miss)", miss),
            ):
                print(f"{name:28} p50 {pct(values, 50):6.2f} ms   p99 {pct(values, 99):6.2f} ms")
            counters: dict[str, int] = {}
            for node in farm.nodes:
                for k, v in farm.tables(node)["counters"].items():
                    if k.startswith("directory_"):
                        counters[k] = counters.get(k, 0) + v
            print(counters)
        finally:
            farm.close()


if __name__ == "__main__":
    main()

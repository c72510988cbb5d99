"""What a node process counts for /metrics: requests, bytes, latency, and their sum over workers.

`Metrics` is the recording API: `request(service, entry, home, status,
bytes_in, bytes_out, seconds)` once per request (the per-request proxy calls
it per request; the connection-level splice calls it once per client
connection through `routed` / `ended`). `snapshot()` turns one process's
numbers into plain JSON-able data (a *sample*) that crosses the worker bus;
`merge(samples)` adds the samples of every worker of a node into one.

Pure: no asyncio, no sockets, no clock (callers pass times and durations).
It must not format Prometheus text (lb.node.exposition does) nor read the
node's objects (lb.node.adminsample builds the samples).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from typing import Any

#: upper bounds (seconds) of the latency histogram buckets; +Inf is implied
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
#: the most request label sets one process keeps (services x nodes x statuses stay far below)
MAX_SERIES = 4096
#: status label of a connection whose response status lb did not read (connection splice)
STATUS_UNREAD = 0

Sample = dict[str, Any]


class Histogram:
    """Counts per bucket (the last one is +Inf), their sum of observed values, and the count."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, value)] += 1
        self.total += value

    def data(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "sum": self.total}


class Metrics:
    """One process's request metrics (a node's workers each have one)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str, int]] = Counter()
        self.bytes_in: Counter[tuple[str, str, str]] = Counter()
        self.bytes_out: Counter[tuple[str, str, str]] = Counter()
        self.latency: dict[str, Histogram] = {}
        self.forwarded: Counter[str] = Counter()  # flows opened to each home peer
        self.dropped = 0  # requests not recorded: too many label sets
        self._open: dict[int, tuple[str, float]] = {}  # id(connection) -> (home, start)

    def request(
        self,
        service: str,
        entry: str,
        home: str,
        status: int,
        bytes_in: int,
        bytes_out: int,
        seconds: float,
    ) -> None:
        """One request that `entry` routed to `home` ended with `status` after `seconds`.

        bytes_in: bytes from the client; bytes_out: bytes to the client.
        """
        key = (service, entry, home, status)
        if key not in self.requests and len(self.requests) >= MAX_SERIES:
            self.dropped += 1
            return
        self.requests[key] += 1
        pair = (service, entry, home)
        if bytes_in:
            self.bytes_in[pair] += bytes_in
        if bytes_out:
            self.bytes_out[pair] += bytes_out
        hist = self.latency.get(service)
        if hist is None:
            hist = self.latency[service] = Histogram()
        hist.observe(max(0.0, seconds))

    # -- the connection-level splice: one "request" per client connection -----------
    def routed(self, connection: object, entry: str, home: str, now: float) -> None:
        """A client connection was routed to `home` at `now` (monotonic seconds)."""
        self._open[id(connection)] = (home, now)
        if home != entry:
            self.forwarded[home] += 1

    def ended(
        self,
        connection: object,
        service: str,
        entry: str,
        now: float,
        bytes_in: int = 0,
        bytes_out: int = 0,
    ) -> None:
        """A routed client connection closed: one request of unread status, with the
        bytes the client sent (`bytes_in`) and was sent (`bytes_out`) over its life."""
        opened = self._open.pop(id(connection), None)
        if opened is not None:
            home, start = opened
            self.request(service, entry, home, STATUS_UNREAD, bytes_in, bytes_out, now - start)

    def snapshot(self) -> Sample:
        """This process's request numbers as plain data (lists and dicts)."""
        return {
            "requests": [[*k, n] for k, n in self.requests.items()],
            "bytes": [
                [*k, self.bytes_in.get(k, 0), self.bytes_out.get(k, 0)]
                for k in self.bytes_in.keys() | self.bytes_out.keys()
            ],
            "latency": {s: h.data() for s, h in self.latency.items()},
            "forwarded": dict(self.forwarded),
            "dropped": self.dropped,
        }


def _sum_dicts(dicts: Iterable[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in dicts:
        for k, v in d.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
    return out


def merge(samples: Iterable[Sample]) -> Sample:
    """The samples of a node's workers added up; link rows stay per worker.

    A sample has `counters`, `gauges` and `forwarded` (name -> number),
    `requests` ([service, entry, home, status, n]), `bytes` ([service, entry,
    home, in, out]), `latency` (service -> counts and sum), `links` (rows)
    and `worker`. Malformed parts of a sample (it crossed a bus) are skipped.
    """
    samples = list(samples)
    requests: Counter[tuple[str, str, str, int]] = Counter()
    byte_pairs: dict[tuple[str, str, str], list[int]] = {}
    latency: dict[str, dict[str, Any]] = {}
    links: list[dict[str, Any]] = []
    per_worker: Counter[int] = Counter()
    for s in samples:
        worker = s.get("worker")
        for row in s.get("requests", ()):
            if _row_ok(row, 5):
                requests[(row[0], row[1], row[2], int(row[3]))] += int(row[4])
                if isinstance(worker, int):
                    per_worker[worker] += int(row[4])
        for row in s.get("bytes", ()):
            if _row_ok(row, 5):
                acc = byte_pairs.setdefault((row[0], row[1], row[2]), [0, 0])
                acc[0] += int(row[3])
                acc[1] += int(row[4])
        for service, h in s.get("latency", {}).items():
            counts = h.get("counts") if isinstance(h, dict) else None
            if not isinstance(counts, list) or len(counts) != len(LATENCY_BUCKETS) + 1:
                continue
            acc_h = latency.setdefault(
                service, {"counts": [0] * (len(LATENCY_BUCKETS) + 1), "sum": 0.0}
            )
            acc_h["counts"] = [a + int(b) for a, b in zip(acc_h["counts"], counts, strict=True)]
            acc_h["sum"] += float(h.get("sum", 0.0))
        for link in s.get("links", ()):
            if isinstance(link, dict):
                links.append({**link, "worker": s.get("worker")})
    return {
        "workers": len(samples),
        "counters": _sum_dicts(s.get("counters", {}) for s in samples),
        "gauges": _sum_dicts(s.get("gauges", {}) for s in samples),
        "forwarded": _sum_dicts(s.get("forwarded", {}) for s in samples),
        "dropped": sum(int(s.get("dropped", 0)) for s in samples),
        "requests": [[*k, n] for k, n in sorted(requests.items())],
        "bytes": [[*k, v[0], v[1]] for k, v in sorted(byte_pairs.items())],
        "latency": latency,
        "links": links,
        "per_worker": {w: per_worker[w] for w in sorted(per_worker)},
    }


def _row_ok(row: Any, n: int) -> bool:
    return (
        isinstance(row, list)
        and len(row) == n
        and all(isinstance(x, str) for x in row[:3])
        and all(isinstance(x, int) and not isinstance(x, bool) for x in row[3:])
    )


def matrix(merged: Sample, entry: str) -> dict[str, dict[str, int]]:
    """This node's row of the forwarding matrix: home -> requests and bytes (cumulative).

    Bytes are what the request metrics carry (a connection-level splice's once it
    ended); off the diagonal, when the requests carry none yet, the flow bytes of
    this node's links to the home both ways.
    """
    row: dict[str, dict[str, int]] = {}
    for service_, e, home, _status, n in merged["requests"]:
        del service_
        if e == entry:
            cell = row.setdefault(home, {"requests": 0, "bytes": 0})
            cell["requests"] += n
    for _service, e, home, b_in, b_out in merged["bytes"]:
        if e == entry:
            cell = row.setdefault(home, {"requests": 0, "bytes": 0})
            cell["bytes"] += b_in + b_out
    for link in merged["links"]:
        if link.get("direction") != "out":
            continue
        home = link.get("peer")
        if not isinstance(home, str):
            continue
        cell = row.setdefault(home, {"requests": 0, "bytes": 0, "link_bytes": 0})
        cell["link_bytes"] = (
            cell.get("link_bytes", 0) + int(link.get("sent", 0)) + int(link.get("received", 0))
        )
    for home, cell in row.items():
        if home != entry and cell["bytes"] == 0:
            cell["bytes"] = cell.get("link_bytes", 0)
        cell.pop("link_bytes", None)
    return row


__all__ = [
    "LATENCY_BUCKETS",
    "STATUS_UNREAD",
    "Histogram",
    "Metrics",
    "Sample",
    "matrix",
    "merge",
]

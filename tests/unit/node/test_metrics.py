"""lb.node.metrics: recording requests, snapshots, and the sum over workers."""

from __future__ import annotations

import json

from lb.node.metrics import LATENCY_BUCKETS, MAX_SERIES, STATUS_UNREAD, Metrics, matrix, merge


def _sample(m: Metrics, worker: int, **extra: object) -> dict[str, object]:
    s = m.snapshot()
    s.update(worker=worker, counters={}, gauges={}, links=[])
    s.update(extra)
    # a sample crosses the bus as JSON: test what arrives
    return dict(json.loads(json.dumps(s)))


def test_request_counts_labels_bytes_and_latency() -> None:
    m = Metrics()
    m.request("web", "a", "b", 200, 100, 2000, 0.004)
    m.request("web", "a", "b", 200, 50, 10, 0.2)
    m.request("web", "a", "a", 502, 10, 0, 3.0)
    assert m.requests[("web", "a", "b", 200)] == 2
    assert m.requests[("web", "a", "a", 502)] == 1
    assert m.bytes_in[("web", "a", "b")] == 150
    assert m.bytes_out[("web", "a", "b")] == 2010
    hist = m.latency["web"]
    assert sum(hist.counts) == 3
    assert hist.counts[LATENCY_BUCKETS.index(0.005)] == 1  # 0.004 <= 0.005
    assert hist.counts[LATENCY_BUCKETS.index(0.25)] == 1  # 0.2 <= 0.25
    assert hist.counts[LATENCY_BUCKETS.index(5.0)] == 1  # 3.0 <= 5.0
    assert abs(hist.total - 3.204) < 1e-9


def test_a_value_on_a_bucket_bound_falls_in_that_bucket() -> None:
    m = Metrics()
    m.request("web", "a", "a", 200, 0, 0, 0.1)
    assert m.latency["web"].counts[LATENCY_BUCKETS.index(0.1)] == 1


def test_slower_than_every_bound_goes_to_inf() -> None:
    m = Metrics()
    m.request("web", "a", "a", 200, 0, 0, 1000.0)
    assert m.latency["web"].counts[-1] == 1


def test_label_sets_are_bounded() -> None:
    m = Metrics()
    for status in range(MAX_SERIES + 10):
        m.request("web", "a", "a", status, 0, 0, 0.0)
    assert len(m.requests) == MAX_SERIES
    assert m.dropped == 10
    m.request("web", "a", "a", 0, 0, 0, 0.0)  # a known label set still counts
    assert m.requests[("web", "a", "a", 0)] == 2


def test_connection_routed_then_ended_is_one_request() -> None:
    m = Metrics()
    conn = object()
    m.routed(conn, "a", "b", now=10.0)
    assert m.forwarded["b"] == 1
    m.ended(conn, "web", "a", now=10.5)
    assert m.requests[("web", "a", "b", STATUS_UNREAD)] == 1
    assert m.latency["web"].total == 0.5
    m.ended(conn, "web", "a", now=11.0)  # ended twice: counted once
    m.ended(object(), "web", "a", now=11.0)  # never routed (a refused client): not a request
    assert sum(m.requests.values()) == 1


def test_a_connection_carries_its_bytes_into_the_byte_counters() -> None:
    m = Metrics()
    conn = object()
    m.routed(conn, "a", "b", now=0.0)
    m.ended(conn, "raw", "a", now=1.0, bytes_in=300, bytes_out=4000)
    assert m.bytes_in[("raw", "a", "b")] == 300
    assert m.bytes_out[("raw", "a", "b")] == 4000


def test_local_connections_are_not_forwarded() -> None:
    m = Metrics()
    m.routed(object(), "a", "a", now=0.0)
    assert not m.forwarded


def test_merge_adds_workers_up() -> None:
    w0, w1 = Metrics(), Metrics()
    for _ in range(3):
        w0.request("web", "a", "b", 0, 10, 20, 0.01)
    for _ in range(4):
        w1.request("web", "a", "b", 0, 1, 2, 0.01)
    w1.request("web", "a", "c", 0, 0, 0, 0.5)
    merged = merge(
        [
            _sample(w0, 0, counters={"new-session": 3}, gauges={"clients": 2}),
            _sample(w1, 1, counters={"new-session": 5, "http_502": 1}, gauges={"clients": 1}),
        ]
    )
    assert merged["workers"] == 2
    assert merged["counters"] == {"new-session": 8, "http_502": 1}
    assert merged["gauges"] == {"clients": 3}
    assert ["web", "a", "b", 0, 7] in merged["requests"]
    assert ["web", "a", "c", 0, 1] in merged["requests"]
    assert ["web", "a", "b", 34, 68] in merged["bytes"]
    counts = merged["latency"]["web"]["counts"]
    assert sum(counts) == 8
    assert merged["per_worker"] == {0: 3, 1: 5}


def test_merge_skips_malformed_parts() -> None:
    good = _sample(Metrics(), 0, counters={"x": 1})
    bad = {
        "worker": 1,
        "requests": [["web", "a"], "junk", ["web", "a", "b", "200", 1]],
        "bytes": [[1, 2, 3, 4, 5]],
        "latency": {"web": {"counts": [1, 2]}},
        "counters": {"x": "many", "y": True},
    }
    merged = merge([good, bad])
    assert merged["requests"] == []
    assert merged["bytes"] == []
    assert merged["latency"] == {}
    assert merged["counters"] == {"x": 1}


def test_matrix_row_uses_request_bytes_else_link_flow_bytes() -> None:
    m = Metrics()
    m.request("web", "a", "a", 0, 5, 7, 0.0)
    m.request("web", "a", "b", 0, 0, 0, 0.0)
    m.request("web", "a", "b", 0, 0, 0, 0.0)
    m.request("web", "c", "b", 0, 0, 0, 0.0)  # another entry: not in a's row
    links = [
        {"peer": "b", "direction": "out", "up": 1, "sent": 100, "received": 900},
        {"peer": "b", "direction": "in", "up": 1, "sent": 5, "received": 5},
    ]
    row = matrix(merge([_sample(m, 0, links=links)]), "a")
    assert row == {"a": {"requests": 1, "bytes": 12}, "b": {"requests": 2, "bytes": 1000}}

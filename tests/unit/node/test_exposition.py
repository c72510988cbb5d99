"""lb.node.exposition: the Prometheus text of merged metrics."""

from __future__ import annotations

import re
from typing import Any

from lb.node.exposition import render
from lb.node.metrics import Metrics, merge

VIEW: dict[str, Any] = {
    "node": "a",
    "farm": "f",
    "draining": False,
    "load": 3,
    "apps": {"web": "up", "raw": "down"},
    "members": {"a": "alive", "b": "dead", "c": None},
    "held": ["b"],
    "directory": {"entries": 7},
}

SAMPLE_LINE = re.compile(r'^([a-z_]+)(\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf)$')


def _text() -> str:
    m = Metrics()
    m.request("web", "a", "b", 200, 10, 20, 0.02)
    m.request("web", "a", "b", 200, 10, 20, 0.3)
    sample = m.snapshot()
    sample.update(
        worker=0,
        counters={"directory": 4, "directory-miss": 1, "extractor_failures": 2, "http_400": 9},
        gauges={
            "clients": 5,
            "pending": 1,
            "forward": 2,
            "local": 1,
            "home_flows": 0,
            "tls_handshakes": 6,
            "tls_handshakes_waiting": 8,
        },
        links=[{"peer": "b", "direction": "out", "up": 1, "rtt": 0.002, "sent": 3, "received": 4}],
    )
    return render(VIEW, merge([sample]))


def _value(text: str, series: str) -> str:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return line.rsplit(" ", 1)[1]
    raise AssertionError(f"no sample {series} in:\n{text}")


def test_held_members_are_one_and_the_others_zero() -> None:
    text = _text()
    assert _value(text, 'lb_member_sessions_held{member="b"}') == "1"
    assert _value(text, 'lb_member_sessions_held{member="a"}') == "0"
    assert _value(text, 'lb_member_sessions_held{member="c"}') == "0"


def test_every_line_is_a_comment_or_a_sample() -> None:
    for line in _text().splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or SAMPLE_LINE.match(line), line


def test_every_family_has_help_and_type_and_counters_end_in_total() -> None:
    text = _text()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    assert set(types) == helps
    for name, kind in types.items():
        assert name.startswith("lb_")
        if kind == "counter":
            assert name.endswith("_total"), name
    assert types["lb_request_duration_seconds"] == "histogram"


def test_help_says_what_an_operator_reads() -> None:
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", _text(), re.M))
    # both link byte families name their labels (received did not)
    for name in ("lb_link_flow_sent_bytes_total", "lb_link_flow_received_bytes_total"):
        assert helps[name].endswith("by peer, direction and worker."), helps[name]
    # the load is exchanges in progress, not the sessions homed here (it said "Sessions")
    assert helps["lb_node_load"].startswith("Requests, tcp connections and tunnels in progress")
    assert "neither an identifier nor a verdict" in helps["lb_extractor_failures_total"]


def test_values() -> None:
    text = _text()
    assert _value(text, 'lb_requests_total{service="web",entry="a",home="b",status="200"}') == "2"
    assert _value(text, 'lb_request_received_bytes_total{service="web",entry="a",home="b"}') == "20"
    assert _value(text, 'lb_request_duration_seconds_bucket{service="web",le="0.025"}') == "1"
    assert _value(text, 'lb_request_duration_seconds_bucket{service="web",le="+Inf"}') == "2"
    assert _value(text, 'lb_request_duration_seconds_count{service="web"}') == "2"
    assert _value(text, 'lb_directory_lookups_total{result="hit"}') == "4"
    assert _value(text, 'lb_directory_lookups_total{result="miss"}') == "1"
    assert _value(text, "lb_directory_entries") == "7"
    assert _value(text, "lb_extractor_failures_total") == "2"
    assert _value(text, 'lb_events_total{event="http_400"}') == "9"
    assert _value(text, "lb_client_connections") == "5"
    assert _value(text, "lb_tls_handshakes") == "6"
    assert _value(text, "lb_tls_handshakes_waiting") == "8"
    assert _value(text, 'lb_link_rtt_seconds{peer="b",worker="0"}') == "0.002"
    assert _value(text, 'lb_member_state{member="b",state="dead"}') == "1"
    assert _value(text, 'lb_member_state{member="b",state="alive"}') == "0"
    assert _value(text, 'lb_member_state{member="c",state="unknown"}') == "0"
    assert _value(text, 'lb_app_up{service="raw"}') == "0"
    assert _value(text, 'lb_app_up{service="web"}') == "1"
    assert _value(text, "lb_node_load") == "3"


def test_buckets_are_cumulative() -> None:
    text = _text()
    counts = [
        int(v)
        for v in re.findall(
            r'^lb_request_duration_seconds_bucket\{service="web",le="[^"]+"\} (\d+)$', text, re.M
        )
    ]
    assert counts == sorted(counts)


def test_label_values_are_escaped() -> None:
    view = dict(VIEW, farm='we"ird\\farm\nx')
    m = Metrics()
    sample = m.snapshot()
    sample.update(worker=0, counters={}, gauges={}, links=[])
    text = render(view, merge([sample]))
    assert 'farm="we\\"ird\\\\farm\\nx"' in text

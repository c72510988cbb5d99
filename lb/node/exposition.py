"""The Prometheus text exposition (format 0.0.4) of a node's merged metrics.

`render(view, merged)` turns the node's own view (members, directory,
application health: `lb.node.adminsample.node_view`) and the sum of its workers'
samples (`lb.node.metrics.merge`) into the text /metrics answers. Names follow
the Prometheus conventions: counters end in `_total`, durations in `_seconds`,
byte counts in `_bytes_total`; every family has HELP and TYPE lines.

Pure: string building only, no I/O; it must not read the node's objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lb import __version__
from lb.node.metrics import LATENCY_BUCKETS, Sample
from lb.routing.route import REASONS
from lb.wire.membership import MemberState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: node counters that have a family of their own; the rest go to lb_events_total
_DIRECTORY_RESULTS = {"directory": "hit", "directory-miss": "miss", "directory-rehomed": "rehomed"}
_OWN_FAMILY = {"extractor_failures", "health_checks_failed", *REASONS}
_STATES = [s.name.lower() for s in MemberState]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, Any]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, rows: Iterable[tuple[Mapping[str, Any], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in rows:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, help_text: str, data: Mapping[str, Mapping[str, Any]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        for service, h in sorted(data.items()):
            running = 0
            counts: list[int] = h["counts"]
            for bound, count in zip([*LATENCY_BUCKETS, None], counts, strict=True):
                running += count
                le = "+Inf" if bound is None else repr(bound)
                self.lines.append(
                    f"{name}_bucket{_labels({'service': service, 'le': le})} {running}"
                )
            self.lines.append(f"{name}_sum{_labels({'service': service})} {_number(h['sum'])}")
            self.lines.append(f"{name}_count{_labels({'service': service})} {running}")


def render(view: Mapping[str, Any], merged: Sample) -> str:
    """The whole /metrics page."""
    t = _Text()
    node = view["node"]
    counters: Mapping[str, float] = merged["counters"]
    gauges: Mapping[str, float] = merged["gauges"]
    t.family(
        "lb_info",
        "gauge",
        "This node: its name, farm and lb version.",
        [({"node": node, "farm": view["farm"], "version": __version__}, 1)],
    )
    t.family(
        "lb_workers_reporting",
        "gauge",
        "Worker processes whose numbers are in this scrape.",
        [({}, merged["workers"])],
    )
    t.family(
        "lb_requests_total",
        "counter",
        "Requests by service, entry node, home node and status (0: status not read, "
        "a connection-level splice).",
        [
            ({"service": s, "entry": e, "home": h, "status": st}, n)
            for s, e, h, st, n in merged["requests"]
        ],
    )
    t.family(
        "lb_worker_requests_total",
        "counter",
        "Requests each worker process of this node took (their sum is lb_requests_total).",
        [({"worker": w}, n) for w, n in merged["per_worker"].items()],
    )
    t.family(
        "lb_request_received_bytes_total",
        "counter",
        "Bytes received from clients, by service, entry and home.",
        [({"service": s, "entry": e, "home": h}, b_in) for s, e, h, b_in, _ in merged["bytes"]],
    )
    t.family(
        "lb_request_sent_bytes_total",
        "counter",
        "Bytes sent to clients, by service, entry and home.",
        [({"service": s, "entry": e, "home": h}, out) for s, e, h, _, out in merged["bytes"]],
    )
    t.histogram(
        "lb_request_duration_seconds",
        "Request durations by service (a connection-level splice: the connection's life).",
        merged["latency"],
    )
    t.family(
        "lb_forwarded_flows_total",
        "counter",
        "Flows this node opened on its links, by home peer.",
        [({"home": h}, n) for h, n in sorted(merged["forwarded"].items())],
    )
    t.family(
        "lb_routed_total",
        "counter",
        "Routing decisions by reason.",
        [({"reason": r}, counters.get(r, 0)) for r in REASONS],
    )
    t.family(
        "lb_directory_lookups_total",
        "counter",
        "Session directory lookups by result.",
        [({"result": res}, counters.get(r, 0)) for r, res in _DIRECTORY_RESULTS.items()],
    )
    t.family(
        "lb_directory_entries",
        "gauge",
        "Sessions in this node's directory.",
        [({}, view["directory"]["entries"])],
    )
    t.family(
        "lb_extractor_failures_total",
        "counter",
        "Extractor calls that raised, or answered neither an identifier nor a verdict.",
        [({}, counters.get("extractor_failures", 0))],
    )
    t.family(
        "lb_health_checks_failed_total",
        "counter",
        "Active application health checks that failed.",
        [({}, counters.get("health_checks_failed", 0))],
    )
    t.family(
        "lb_events_total",
        "counter",
        "Other events the node counts (refusals, timeouts, errors), by name.",
        [({"event": k}, v) for k, v in sorted(counters.items()) if k not in _OWN_FAMILY],
    )
    t.family(
        "lb_metrics_dropped_total",
        "counter",
        "Requests not recorded because a process holds too many label sets.",
        [({}, merged["dropped"])],
    )
    for name, key, help_text in (
        ("lb_client_connections", "clients", "Client connections open."),
        (
            "lb_tls_handshakes",
            "tls_handshakes",
            "TLS handshakes of client connections running (tls-terminate).",
        ),
        (
            "lb_tls_handshakes_waiting",
            "tls_handshakes_waiting",
            "TLS client connections waiting for a handshake slot.",
        ),
        ("lb_local_splices", "local", "Client connections spliced to the local application."),
        ("lb_home_flows", "home_flows", "Flows from peers this node is home for."),
        ("lb_pending_flows", "pending", "Flows in the pending tables of the links."),
        ("lb_forward_flows", "forward", "Flows in the forward tables of the links."),
    ):
        t.family(name, "gauge", help_text, [({}, gauges.get(key, 0))])
    links = merged["links"]
    t.family(
        "lb_link_up",
        "gauge",
        "Whether a link is logged in, by peer, direction and worker.",
        [
            ({"peer": ln["peer"], "direction": ln["direction"], "worker": ln["worker"]}, ln["up"])
            for ln in links
        ],
    )
    t.family(
        "lb_link_rtt_seconds",
        "gauge",
        "Round trip of the last PING answered on an outbound link.",
        [
            ({"peer": ln["peer"], "worker": ln["worker"]}, ln["rtt"])
            for ln in links
            if ln["direction"] == "out" and ln.get("rtt") is not None
        ],
    )
    for name, key, help_text in (
        (
            "lb_link_flow_sent_bytes_total",
            "sent",
            "Flow bytes sent on links (payload, no framing), by peer, direction and worker.",
        ),
        (
            "lb_link_flow_received_bytes_total",
            "received",
            "Flow bytes received on links (payload, no framing), by peer, direction and worker.",
        ),
    ):
        t.family(
            name,
            "counter",
            help_text,
            [
                (
                    {"peer": ln["peer"], "direction": ln["direction"], "worker": ln["worker"]},
                    ln[key],
                )
                for ln in links
            ],
        )
    members: Mapping[str, str | None] = view["members"]
    t.family(
        "lb_member_state",
        "gauge",
        "Membership state of each node as this node sees it (1 for the current state).",
        [
            ({"member": m, "state": s}, 1 if state == s else 0)
            for m, state in sorted(members.items())
            for s in _STATES
        ],
    )
    held = set(view.get("held", ()))
    t.family(
        "lb_member_sessions_held",
        "gauge",
        "Whether a member's sessions wait for it while it cannot be reached (this node "
        "hears no peer, or it died within dead_rehome_after): 1, else 0.",
        [({"member": m}, 1 if m in held else 0) for m in sorted(members)],
    )
    t.family(
        "lb_app_up",
        "gauge",
        "Whether the local application of a service passes its health checks.",
        [({"service": s}, state == "up") for s, state in sorted(view["apps"].items())],
    )
    t.family("lb_draining", "gauge", "Whether this node drains.", [({}, view["draining"])])
    t.family(
        "lb_node_load",
        "gauge",
        "Requests, tcp connections and tunnels in progress whose home is this node "
        "(the load new-session placement compares).",
        [({}, view["load"])],
    )
    return "\n".join(t.lines) + "\n"


__all__ = ["CONTENT_TYPE", "render"]

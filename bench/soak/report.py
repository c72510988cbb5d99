"""Tables of a soak run's records (bench/soak/run.py's work directory).

    .venv/bin/python bench/soak/report.py /tmp/soak [--errors]

Prints: the operator actions; per node process RSS and descriptors (start,
peak, end); the node gauges and tables records (start, peak, end); CPU of each
part during the load; client outcomes that were not plain successes, by kind
and by 30 s window with the actions of that window; the node logs' warnings,
errors and anything that is not a JSON record (tracebacks).
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

NODES = ("a", "b", "c")
SUSPICIOUS = re.compile(
    r"Traceback|Task was destroyed|exception was never retrieved|Unclosed|ResourceWarning"
    r"|Exception in callback|Fatal error"
)


def load(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def sps(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{values[0]:g} / {max(values):g} / {values[-1]:g}"


def disruptions(actions: list[dict[str, Any]]) -> list[tuple[str, str, float, float]]:
    """(node, what, from, to) wall-clock intervals in which the operator disturbed a node."""
    out = []
    open_: dict[tuple[str, str], float] = {}
    for a in actions:
        n, w, act = a.get("node"), a["wall"], a["action"]
        if act == "ctl_drain":
            open_[(n, "drained")] = w
        elif act == "ctl_undrain" and (n, "drained") in open_:
            out.append((n, "drained", open_.pop((n, "drained")), w + 1))
        elif act == "sigterm":
            open_[(n, "stopped")] = w
        elif act == "kill9_node":
            open_[(n, "killed")] = w - 0.5
        elif act == "kill9_worker":
            out.append((n, "worker_killed", w - 0.5, w + 6))
        elif act == "ready":
            for what in ("stopped", "killed"):
                if (n, what) in open_:
                    out.append((n, what, open_.pop((n, what)), w + 1))
        elif act == "sighup":
            for m in a.get("nodes") or []:
                out.append((m, "reloaded", w, w + 3))
    return out


DISCONNECTS = {
    "reset", "eof_before_response", "eof_in_response", "server_disconnected",
    "write_after_close", "truncated_body", "broken_pipe", "timeout",
}  # fmt: skip


def classify(e: dict[str, Any], dis: list[tuple[str, str, float, float]]) -> str:
    """'expected: <why>' when the outcome is one the docs describe for an action on the
    node it went through or to; otherwise 'unexplained'."""
    ev, w = e["ev"], e["wall"]
    if e["kind"] == "misbehave" and e.get("error"):
        ev = e["error"]
    slack = 4.0 if e["kind"] in ("ws", "tcp_long") else 1.0  # detected on the next message
    nodes = {e.get("entry"), e.get("home"), e.get("old")} - {None}

    def hit(kinds: tuple[str, ...], among: set[str], before: float = 1.5, after: float = 0.0):
        for n, what, a, b in dis:
            if what in kinds and n in among and a - before <= w <= b + after:
                return f"expected: {what} {n}"
        return None

    if ev == "unexpected" and e.get("scenario") == "idle_keepalive":
        # a drain closes idle keep-alive connections at once (README, Signals)
        # (and a killed worker or node resets the connections it held)
        return (
            hit(("drained", "stopped", "killed", "worker_killed"), {e.get("entry")} - {None})
            or "unexplained"
        )
    if ev == "not_resumed":
        # tickets are sealed with the hour's key: one of the hour before is not taken
        if int(e.get("prev_wall", w) // 3600) != int(w // 3600):
            return "expected: the ticket key's hour turned"
        return "unexplained"
    if ev == "refused":
        return hit(("drained", "stopped", "killed"), {e.get("entry")} - {None}) or "unexplained"
    if ev in DISCONNECTS or ev.startswith("oserror") or ev.startswith("http_5"):
        return (
            hit(("killed", "worker_killed", "stopped"), nodes, after=slack)
            or hit(("drained",), {e.get("entry")} - {None}, after=slack)
            or "unexplained"
        )
    if ev == "home_changed":
        if e["kind"] == "tcp_short":  # client-ip: a consistent hash over the live nodes
            # the live set changed between this source's previous connection and this one
            since = e.get("prev_wall", w - 30)
            for n, what, a, b in dis:
                if what in ("killed", "stopped") and a <= w and b >= since:
                    return f"expected: {what} {n} (live set changed)"
            return "unexplained"
        return hit(("killed", "stopped"), {e.get("old")} - {None}, after=30) or "unexplained"
    return "unexplained"


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/soak")
    actions = load(work / "actions.jsonl")
    samples = load(work / "samples.jsonl")
    events = load(work / "events.jsonl")
    t_load = next((a["wall"] for a in actions if a["action"] == "load_started"), None)
    t_first = samples[0]["wall"] if samples else 0.0
    t0 = t_load or t_first

    def rel(wall: float) -> float:
        return round(wall - t0, 1)

    print("## Operator actions (t: seconds after the load started)\n")
    for a in actions:
        extra = {k: v for k, v in a.items() if k not in ("t", "wall", "action", "out")}
        print(f"- {rel(a['wall']):7.1f}  {a['action']} {extra}")

    print("\n## Node processes: RSS MiB and open fds (start / peak / end), sampled every 30 s\n")
    print("| node | process | pids | RSS MiB | fds | threads |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in NODES:
        roles: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for s in samples:
            for p in s["nodes"][n]["procs"]:
                roles[p["role"]].append(p)
        for role in sorted(roles):
            ps = roles[role]
            pids = list(dict.fromkeys(p["pid"] for p in ps))
            print(
                f"| {n} | {role} | {len(pids)} | {sps([p['rss_mib'] for p in ps])} | "
                f"{sps([p['fds'] for p in ps])} | {sps([p['threads'] for p in ps])} |"
            )
        # the last life of each role (since the last restart)
        for role in sorted(roles):
            ps = roles[role]
            last = [p for p in ps if p["pid"] == ps[-1]["pid"]]
            if len(last) != len(ps):
                print(
                    f"| {n} | {role} (last life, {len(last)} samples) | 1 | "
                    f"{sps([p['rss_mib'] for p in last])} | {sps([p['fds'] for p in last])} | "
                    f"{sps([p['threads'] for p in last])} |"
                )

    print("\n## Node gauges (/metrics, node-wide) and tables records (sum over workers)\n")
    keys = [
        "lb_client_connections", "lb_tls_handshakes", "lb_tls_handshakes_waiting",
        "lb_local_splices", "lb_home_flows", "lb_pending_flows", "lb_forward_flows",
        "lb_directory_entries", "lb_node_load",
    ]  # fmt: skip
    print("| node | " + " | ".join(k.removeprefix("lb_") for k in keys) + " |")
    print("| --- |" + " --- |" * len(keys))
    for n in NODES:
        cols = []
        for k in keys:
            vals = [
                s["nodes"][n]["metrics"][k]
                for s in samples
                if k in s["nodes"][n].get("metrics", {})
            ]
            cols.append(sps(vals))
        print(f"| {n} | " + " | ".join(cols) + " |")
    tkeys = ["clients", "local", "pending", "forward", "pooled_flows", "pooled_app", "tls_accepted"]
    print("\n| node | " + " | ".join(tkeys) + " |")
    print("| --- |" + " --- |" * len(tkeys))
    for n in NODES:
        series: dict[str, list[float]] = collections.defaultdict(list)
        for s in samples:
            tabs = s["nodes"][n].get("tables") or []
            if not tabs:
                continue
            for k in ("clients", "local", "pending", "forward"):
                series[k].append(sum(t.get(k) or 0 for t in tabs))
            pf = pa = 0
            for t in tabs:
                for home, lst in (t.get("pooled") or {}).items():
                    if home == n:
                        pa += len(lst)
                    else:
                        pf += len(lst)
            series["pooled_flows"].append(pf)
            series["pooled_app"].append(pa)
            series["tls_accepted"].append(
                sum((t.get("tls_handshakes") or {}).get("accepted", 0) for t in tabs)
            )
        print(f"| {n} | " + " | ".join(sps(series[k]) for k in tkeys) + " |")

    print("\n## CPU during the load (share of one core)\n")
    run = [s for s in samples if s["phase"] == "run" and s["wall"] >= t0]
    if len(run) >= 2:
        a, b = run[0], run[-1]
        dt = b["wall"] - a["wall"]
        for n in NODES:
            ca = {p["pid"]: p["cpu_s"] for p in a["nodes"][n]["procs"]}
            cb = {p["pid"]: p["cpu_s"] for p in b["nodes"][n]["procs"]}
            # processes restarted meanwhile count from 0
            used = sum(cb[p] - ca.get(p, 0.0) for p in cb)
            print(f"- node {n}: {used / dt * 100:.1f} % (processes alive at the end)")
        for k in b["others"]:
            if k in a["others"]:
                d = b["others"][k]["cpu_s"] - a["others"][k]["cpu_s"]
                print(f"- {k}: {d / dt * 100:.1f} %")

    print("\n## Client outcomes\n")
    ok: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("ev") == "window":
            ok.update(e["counts"])
    print("successes: " + ", ".join(f"{k} {v}" for k, v in sorted(ok.items())))
    bad = [e for e in events if e.get("ev") not in ("window", "done")]
    dis = disruptions(actions)
    for e in bad:
        e["class"] = classify(e, dis)
    by_kind = collections.Counter(
        (e["kind"], e["ev"], e.get("scenario") or "", e.get("error") or "", e["class"]) for e in bad
    )
    print("\n| client | outcome | scenario | error | class | count |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (k, ev, sc, err, cl), c in sorted(by_kind.items()):
        print(f"| {k} | {ev} | {sc} | {err} | {cl} | {c} |")
    print("\n### Unexplained outcomes\n")
    for e in bad:
        if e["class"] == "unexplained":
            print(f"{rel(e['wall']):8.2f}", {k: v for k, v in e.items() if k not in ("wall", "t")})

    print("\n### By 30 s window (t from the load's start), with the actions in it\n")
    windows: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for e in bad:
        windows[int(rel(e["wall"]) // 30)].append(e)
    acts: dict[int, list[str]] = collections.defaultdict(list)
    for a in actions:
        if a["wall"] >= t0:
            acts[int(rel(a["wall"]) // 30)].append(
                f"{rel(a['wall']):.0f}s {a['action']} {a.get('node') or a.get('nodes') or ''}"
            )
    for w in sorted(set(windows) | set(acts)):
        c = collections.Counter(f"{e['kind']}:{e['ev']}" for e in windows[w])
        print(f"- [{w * 30:5d}, {w * 30 + 30:5d}) {dict(c)}  actions: {acts.get(w, [])}")

    if "--errors" in sys.argv:
        print("\n### Every outcome\n")
        for e in bad:
            print(f"{rel(e['wall']):8.2f}", {k: v for k, v in e.items() if k not in ("wall", "t")})

    print("\n## Node logs: records above info, and anything not JSON\n")
    for n in NODES:
        log = work / f"node-{n}.log"
        if not log.exists():
            continue
        levels: collections.Counter[tuple[str, str]] = collections.Counter()
        odd: list[str] = []
        for line in log.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                odd.append(line)
                continue
            if SUSPICIOUS.search(line):
                odd.append(line[:300])
            if rec.get("level") not in ("info", "debug"):
                levels[(rec.get("level"), rec.get("event"))] += 1
        print(
            f"- node {n}: " + ", ".join(f"{lv}:{ev} x{c}" for (lv, ev), c in sorted(levels.items()))
        )
        for line in odd[:40]:
            print(f"    | {line[:300]}")
        if len(odd) > 40:
            print(f"    | ... {len(odd) - 40} more")


if __name__ == "__main__":
    main()

"""A multi-host lb farm in network namespaces, with faults: cuts, partitions, loss, delay.

`NetFarm` builds one namespace per lb node (its node process and its test
backend run there, on the node's own address 198.18.0.11, .12, ...), one
namespace for clients (198.18.0.100) and one namespace holding only a bridge;
every other namespace is joined to the bridge by a veth pair. Client traffic
and link traffic therefore really cross interfaces that nft rules can drop.

Faults:

- ``cut(a, b)`` / ``heal(a, b)``: each of the two nodes drops, in its input
  hook, every packet from the other's address (so both directions are cut;
  packets vanish silently, nothing is refused). ``partition(node)`` cuts a node
  from every other *node*; clients still reach it.
- ``loss(node, percent)``: ``numgen random mod 100 < N drop`` on the wire: in
  the bridge's namespace, on frames from and to the node's bridge port (each
  packet of its traffic, clients' included, is dropped with that probability
  once). Not in the node's own namespace: a packet its OUTPUT hook drops is a
  send error to the sender (EPERM), which real loss never is, and Linux acts on
  it (a request socket whose SYN-ACK retransmission fails to go out is dropped,
  so a client an earlier SYN-ACK connected gets a reset; test_harness_loss.py).
- ``delay(node, seconds)``: there is no netem qdisc on this kernel, so delay is
  made by delaying TCP relays (``NetFarm(delay_relays=True)``): in every node's
  namespace an nft ``redirect`` sends link connections arriving for the node's
  forward port to a relay process, which passes them to the real forward
  listener and holds every chunk for the configured time in each direction.
  ``delay(node, d)`` delays the links into that node (its relay) and the links
  out of it (the other relays, for connections from its address). Client
  connections are not delayed. The relays are installed before the nodes
  start, so every link runs through them from its first byte.

Processes run with ``ip netns exec``; each is a process-group leader and is
stopped at ``close()``. Namespace names are ``lbt<pid>x<n>-<role>``: a later
run removes what a crashed run left (``cleanup_leftovers``) by checking that
pid. This module drives lb only as an operator would (config file, processes,
signals, logs); the one lb class it uses is the home-cookie keyring.

Run as a script (``python netns.py relay ...``) it is the delaying relay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BACKEND = Path(__file__).with_name("backend.py")
LOADGEN = Path(__file__).with_name("loadgen.py")
THIS = Path(__file__).resolve()

PREFIX = "lbt"
NET = "198.18.0"
CLIENT_IP = f"{NET}.100"
# more addresses of the client namespace: the steady load gives each session one of
# them, as many users are many addresses (lb places one address's new sessions on one
# home for a while, so one address for every session would put them all on one node)
CLIENT_SOURCES = tuple(f"{NET}.{i}" for i in range(101, 131))
FORWARD_PORT = 7000
RELAY_PORT = 7001
WEB_PORT = 8080
APP_PORT = 9000
COOKIE_NAME = "lbhome"
FAULT_TABLE = "lbt_fault"
LOSS_CHAIN = "loss_"  # the bridge's chain of node N's loss is loss_N
RELAY_TABLE = "lbt_relay"
_NS_RE = re.compile(rf"^{PREFIX}(\d+)x(\d+)-")

DEFAULT_LIMITS: dict[str, Any] = {
    "head_timeout": 2.0,
    "connect_timeout": 1.0,
    "pending_timeout": 2.0,
    "ping_interval": 0.5,
    "dead_after": 2.5,
}

_counter = 0


# ----------------------------------------------------------------------------- host checks


def _run(args: Sequence[str], *, check: bool = True, input_: str | None = None) -> str:
    proc = subprocess.run(
        list(args), input=input_, capture_output=True, text=True, timeout=30, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def unsupported_reason() -> str | None:
    """Why namespaces and nft cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "fault tests need root (network namespaces, veth, nft)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"fault tests need the `{tool}` command (apt-get install iproute2 nftables)"
    probe = f"{PREFIX}{os.getpid()}x0-probe"
    try:
        _run(["ip", "netns", "add", probe])
        try:
            _run(["ip", "netns", "exec", probe, "nft", "list", "ruleset"])
        finally:
            _run(["ip", "netns", "del", probe], check=False)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns` / nft do not work here: {exc}"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _list_netns() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_ns_processes(ns: str) -> None:
    """SIGKILL every process still inside namespace `ns` (only ever one of ours)."""
    for _ in range(3):
        pids = [int(p) for p in _run(["ip", "netns", "pids", ns], check=False).split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _delete_ns(ns: str) -> None:
    _kill_ns_processes(ns)
    for table in (f"inet {FAULT_TABLE}", f"ip {RELAY_TABLE}"):
        _run(["ip", "netns", "exec", ns, "nft", "delete", "table", *table.split()], check=False)
    _run(["ip", "netns", "del", ns], check=False)


def cleanup_leftovers() -> list[str]:
    """Remove namespaces (and root-namespace links) of earlier runs whose process is gone."""
    removed = []
    for ns in _list_netns():
        m = _NS_RE.match(ns)
        if m and not _pid_alive(int(m.group(1))):
            _delete_ns(ns)
            removed.append(ns)
    out = _run(["ip", "-o", "link", "show"], check=False)
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = re.match(rf"^{PREFIX}(\d+)x", name)
        if m and not _pid_alive(int(m.group(1))):
            _run(["ip", "link", "del", name], check=False)
            removed.append(name)
    return removed


# ----------------------------------------------------------------------------- the farm


def parse_ts(value: str) -> float:
    """Epoch seconds of a log record's ISO timestamp."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    expected_exit: bool = False


@dataclass
class LoadRun:
    """A running tests/support/loadgen.py process in the client namespace."""

    popen: subprocess.Popen[bytes]
    out_path: Path
    started: float = field(default_factory=time.time)

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the loadgen's `ready` line (its sessions exist, the load starts)."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"loadgen not ready within {timeout} s")
            ready, _, _ = select.select([self.popen.stdout], [], [], left)
            if ready:
                ch = os.read(self.popen.stdout.fileno(), 1)
                if not ch:
                    raise RuntimeError(f"loadgen exited before ready: {self.stderr()}")
                line += ch
        rec: dict[str, Any] = json.loads(line)
        return rec

    def stop(self) -> None:
        """Ask the loadgen to stop issuing requests (it finishes those in flight)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, signal.SIGTERM)

    def result(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for the end of the run and return its full JSON result."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise RuntimeError(f"loadgen still running after {timeout} s") from None
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        if self.popen.returncode != 0:
            raise RuntimeError(f"loadgen exited {self.popen.returncode}: {self.stderr()}")
        out: dict[str, Any] = json.loads(self.out_path.read_text())
        return out

    def stderr(self) -> str:
        path = self.out_path.with_suffix(".err")
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


#: Every NetFarm not yet closed (a failing test's report shows their logs).
ACTIVE_NETFARMS: list[NetFarm] = []


def _task_states(pid: str) -> list[str]:
    """The state letter of every thread of process `pid` (empty when it is gone)."""
    states = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return states
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except OSError:
            continue
    return states


def _group_alive(pgid: int) -> bool:
    """Whether any thread of a process in group `pgid` still runs.

    A process whose main thread is a zombie still holds its sockets while another of
    its threads (a resolver thread, say) is exiting: only when every thread is gone
    or a zombie does the kernel stop accepting on the node's listeners.
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) != pgid:
            continue
        if any(state not in ("Z", "X") for state in _task_states(entry)):
            return True
    return False


class NetFarm:
    """A farm of real lb processes, one network namespace per node, joined by a bridge."""

    def __init__(
        self,
        workdir: Path,
        nodes: Sequence[str] = ("a", "b", "c"),
        limits: Mapping[str, Any] | None = None,
        *,
        delay_relays: bool = False,
        log_level: str = "info",
        name: str = "nf",
        workers: int | None = None,
    ) -> None:
        global _counter
        _counter += 1
        self.tag = f"{PREFIX}{os.getpid()}x{_counter}"
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = tuple(nodes)
        self.limits = dict(DEFAULT_LIMITS)
        self.limits.update(limits or {})
        self.delay_relays = delay_relays
        self.log_level = log_level
        self.name = name
        # two processes per node by default: a peer's gossip must reach every worker
        self.workers = 2 if workers is None else workers
        self.secret = secrets.token_urlsafe(48)
        self.ips = {n: f"{NET}.{11 + i}" for i, n in enumerate(self.nodes)}
        self.config_path = self.workdir / "farm.toml"
        self.config_path.write_text(self.config_text())
        self.lb_procs: dict[str, _Proc] = {}
        self.backend_procs: dict[str, _Proc] = {}
        self.relay_procs: dict[str, _Proc] = {}
        self.loads: list[LoadRun] = []
        self.namespaces: list[str] = []
        self.cuts: set[frozenset[str]] = set()
        self.losses: dict[str, int] = {}
        self.delays: dict[str, float] = {}
        self.closed = False
        self._loadgen_n = 0

    # ------------------------------------------------------------------ names

    def ns(self, node: str) -> str:
        return f"{self.tag}-{node}"

    @property
    def client_ns(self) -> str:
        return f"{self.tag}-cl"

    @property
    def bridge_ns(self) -> str:
        return f"{self.tag}-br"

    def ip(self, node: str) -> str:
        return self.ips[node]

    def entries_arg(self, nodes: Iterable[str] | None = None) -> str:
        """The loadgen's --entries value: name=ip:port of each node's web listener."""
        return ",".join(f"{n}={self.ips[n]}:{WEB_PORT}" for n in (nodes or self.nodes))

    def log_path(self, node: str) -> Path:
        return self.workdir / f"node-{node}.log"

    # ------------------------------------------------------------------ config

    def config_text(self) -> str:
        def val(v: Any) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            return repr(v) if isinstance(v, int | float) else json.dumps(str(v))

        lines = [
            "[farm]",
            f'name = "{self.name}"',
            f'secret = "{self.secret}"',
            'link_security = "plaintext"',
            f'cookie_name = "{COOKIE_NAME}"',
            "",
            "[limits]",
            *(f"{k} = {val(v)}" for k, v in self.limits.items()),
            "",
            "[log]",
            f'level = "{self.log_level}"',
            'format = "json"',
            "",
            "[[services]]",
            'name = "web"',
            'protocol = "http"',
            'extractors = [ { kind = "home-cookie" } ]',
        ]
        for n in self.nodes:
            ip = self.ips[n]
            lines += [
                "",
                "[[nodes]]",
                f'name = "{n}"',
                f'forward = "{ip}:{FORWARD_PORT}"',
                f'listen = {{ web = "{ip}:{WEB_PORT}" }}',
                f'apps = {{ web = "{ip}:{APP_PORT}" }}',
            ]
            if self.workers is not None:
                lines.append(f"workers = {self.workers}")
        return "\n".join(lines) + "\n"

    def sign_cookie(self, node: str, expires: int | None = None) -> str:
        """A home cookie value naming `node`, signed with the farm's secret."""
        from lb.routing.cookie import CookieKeyring

        keyring = CookieKeyring(self.name, self.secret.encode("utf-8"))
        value: str = keyring.sign(node, int(time.time()) + 3600 if expires is None else expires)
        return value

    def cookies_arg(self, nodes: Iterable[str] | None = None) -> str:
        return ",".join(f"{n}={self.sign_cookie(n)}" for n in (nodes or self.nodes))

    # ------------------------------------------------------------------ topology

    def _ip_ns(self, ns: str, *args: str) -> None:
        _run(["ip", "-n", ns, *args])

    def _add_ns(self, ns: str) -> None:
        _run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        self._ip_ns(ns, "link", "set", "lo", "up")

    def _attach(self, ns: str, port: str, ip: str) -> None:
        """Join namespace `ns` to the bridge with a veth pair; its end is eth0 with `ip`/24."""
        self._add_ns(ns)
        self._ip_ns(
            ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", self.bridge_ns
        )
        self._ip_ns(ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        self._ip_ns(ns, "link", "set", "eth0", "up")
        self._ip_ns(self.bridge_ns, "link", "set", port, "master", "br0")
        self._ip_ns(self.bridge_ns, "link", "set", port, "up")

    def _build_topology(self) -> None:
        self._add_ns(self.bridge_ns)
        self._ip_ns(self.bridge_ns, "link", "add", "br0", "type", "bridge")
        self._ip_ns(self.bridge_ns, "link", "set", "br0", "up")
        for n in self.nodes:
            self._attach(self.ns(n), f"p-{n}", self.ips[n])
            self._apply_faults(n)
        self._attach(self.client_ns, "p-cl", CLIENT_IP)
        for ip in CLIENT_SOURCES:
            self._ip_ns(self.client_ns, "addr", "add", f"{ip}/24", "dev", "eth0")

    # ------------------------------------------------------------------ processes

    def _spawn(
        self, ns: str, args: Sequence[str], log: Path, stdout_pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as f:
            return subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else f,
                stderr=f,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    @staticmethod
    def _wait_line(popen: subprocess.Popen[bytes], what: str, timeout: float) -> None:
        assert popen.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{what} did not print ready within {timeout} s")
            ready, _, _ = select.select([popen.stdout], [], [], left)
            if ready:
                ch = os.read(popen.stdout.fileno(), 1)
                if not ch:
                    raise RuntimeError(f"{what} exited before it was ready")
                line += ch
        if line.strip() != b"ready":
            raise RuntimeError(f"{what} printed {line!r} instead of ready")

    def start(self, timeout: float = 30.0) -> None:
        """Build the namespaces, start backends (and relays) and nodes; wait until ready."""
        ACTIVE_NETFARMS.append(self)
        self._build_topology()
        for n in self.nodes:
            args = [str(BACKEND), "--node", n, "--port", str(APP_PORT), "--host", self.ips[n]]
            popen = self._spawn(self.ns(n), args, self.workdir / f"backend-{n}.log", True)
            self.backend_procs[n] = _Proc(popen)
        if self.delay_relays:
            for n in self.nodes:
                self._start_relay(n)
        for n in self.nodes:
            self._wait_line(self.backend_procs[n].popen, f"backend {n}", timeout)
        for n in self.relay_procs:
            self._wait_line(self.relay_procs[n].popen, f"relay {n}", timeout)
        for n in self.nodes:
            self.start_node(n)
        self.wait_ready(timeout=timeout)

    def _start_relay(self, node: str) -> None:
        ip = self.ips[node]
        control = self.workdir / f"relay-{node}.json"
        control.write_text(json.dumps({"default": 0.0, "by_source": {}}))
        args = [
            str(THIS),
            "relay",
            "--listen",
            f"{ip}:{RELAY_PORT}",
            "--upstream",
            f"{ip}:{FORWARD_PORT}",
            "--control",
            str(control),
        ]
        popen = self._spawn(self.ns(node), args, self.workdir / f"relay-{node}.log", True)
        self.relay_procs[node] = _Proc(popen)
        rules = (
            f"table ip {RELAY_TABLE} {{\n"
            "  chain pre { type nat hook prerouting priority dstnat; policy accept;\n"
            f'    iifname "eth0" ip daddr {ip} tcp dport {FORWARD_PORT} '
            f"redirect to :{RELAY_PORT}\n"
            "  }\n}\n"
        )
        _run(["ip", "netns", "exec", self.ns(node), "nft", "-f", "-"], input_=rules)

    def start_node(self, node: str) -> None:
        """Start node `node`'s lb process (it must not be running)."""
        cur = self.lb_procs.get(node)
        if cur is not None and cur.popen.poll() is None:
            raise RuntimeError(f"node {node} is already running")
        args = ["-m", "lb", "run", "--config", str(self.config_path), "--node", node]
        self.lb_procs[node] = _Proc(self._spawn(self.ns(node), args, self.log_path(node)))

    def pid(self, node: str) -> int:
        return self.lb_procs[node].popen.pid

    def running(self, node: str) -> bool:
        p = self.lb_procs.get(node)
        return p is not None and p.popen.poll() is None

    def signal(self, node: str, sig: int, *, group: bool = False) -> float:
        """Send `sig` to node `node`'s lb process (with `group`, to every process of the
        node: its workers too); return the time it was sent."""
        proc = self.lb_procs[node]
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            proc.expected_exit = True
        t = time.time()
        if group:
            os.killpg(proc.popen.pid, sig)
        else:
            os.kill(proc.popen.pid, sig)
        return t

    def kill9(self, node: str) -> float:
        """SIGKILL every process of node `node` (a crash) and wait until all of them are
        gone (the main one reaped, its workers too, so no socket of the node remains);
        return the time of the kill."""
        from tests.support.wait import eventually  # not at the top: the relay runs this file

        popen = self.lb_procs[node].popen
        t = self.signal(node, signal.SIGKILL, group=True)
        popen.wait(timeout=10)
        eventually(
            lambda: not _group_alive(popen.pid),
            timeout=10,
            interval=0.005,
            what=f"a process of node {node} still runs after SIGKILL",
        )
        return t

    def sigterm(self, node: str) -> float:
        """SIGTERM to the node's main process, as an operator or init system stops it."""
        return self.signal(node, signal.SIGTERM)

    def sigstop(self, node: str) -> float:
        """Freeze every process of the node."""
        return self.signal(node, signal.SIGSTOP, group=True)

    def sigcont(self, node: str) -> float:
        return self.signal(node, signal.SIGCONT, group=True)

    def wait_exit(self, node: str, timeout: float) -> int:
        """Wait for node `node`'s process to exit; its exit code."""
        return self.lb_procs[node].popen.wait(timeout=timeout)

    def restart(self, node: str, timeout: float = 30.0) -> float:
        """Start node `node` again (SIGKILL first if it runs), wait until ready; the start time."""
        if self.running(node):
            self.kill9(node)
        t = time.time()
        self.start_node(node)
        self.wait_ready(timeout=timeout)
        return t

    def unexpected_exits(self) -> list[str]:
        out = []
        for kind, procs in (
            ("node", self.lb_procs),
            ("backend", self.backend_procs),
            ("relay", self.relay_procs),
        ):
            for n, p in procs.items():
                if not p.expected_exit and p.popen.poll() is not None:
                    out.append(f"{kind} {n} (exit code {p.popen.returncode})")
        return out

    # ------------------------------------------------------------------ faults

    def _apply_faults(self, node: str) -> None:
        """Replace node `node`'s fault table with the rules its cuts need.

        A cut drops in the node's input hook: the sender's stack never sees it."""
        inp: list[str] = []
        for pair in sorted(self.cuts, key=sorted):
            if node in pair:
                (other,) = pair - {node}
                inp.append(f"ip saddr {self.ips[other]} drop")
        body = "".join(f"    {r}\n" for r in inp)
        rules = (
            f"table inet {FAULT_TABLE} {{}}\n"
            f"delete table inet {FAULT_TABLE}\n"
            f"table inet {FAULT_TABLE} {{\n"
            "  chain input { type filter hook input priority filter - 10; policy accept;\n"
            f"{body}  }}\n"
            "}\n"
        )
        _run(["ip", "netns", "exec", self.ns(node), "nft", "-f", "-"], input_=rules)

    def _apply_loss(self) -> None:
        """Replace the bridge's loss table: one chain per lossy node, on its bridge port."""
        chains = ""
        for node, pct in sorted(self.losses.items()):
            if pct <= 0:
                continue
            chance = "" if pct >= 100 else f"numgen random mod 100 < {pct} "
            port = f"p-{node}"
            chains += (
                f"  chain {LOSS_CHAIN}{node} {{ type filter hook forward priority filter - 10; "
                "policy accept;\n"
                f'    iifname "{port}" meta protocol {{ ip, ip6 }} {chance}drop\n'
                f'    oifname "{port}" meta protocol {{ ip, ip6 }} {chance}drop\n'
                "  }\n"
            )
        rules = (
            f"table bridge {FAULT_TABLE} {{}}\n"
            f"delete table bridge {FAULT_TABLE}\n"
            f"table bridge {FAULT_TABLE} {{\n{chains}}}\n"
        )
        _run(["ip", "netns", "exec", self.bridge_ns, "nft", "-f", "-"], input_=rules)

    def fault_rules(self, node: str) -> str:
        """The fault rules of node `node` as nft lists them: its own table (cuts) and
        its chain of the bridge's table (loss), if it has one."""
        text = _run(
            ["ip", "netns", "exec", self.ns(node), "nft", "list", "table", "inet", FAULT_TABLE]
        )
        if self.losses.get(node, 0) > 0:
            chain = ["bridge", FAULT_TABLE, f"{LOSS_CHAIN}{node}"]
            text += _run(["ip", "netns", "exec", self.bridge_ns, "nft", "list", "chain", *chain])
        return text

    def cut(self, a: str, b: str) -> None:
        """Drop every packet between nodes a and b (both directions, silently)."""
        self.cuts.add(frozenset((a, b)))
        self._apply_faults(a)
        self._apply_faults(b)

    def heal(self, a: str, b: str) -> None:
        self.cuts.discard(frozenset((a, b)))
        self._apply_faults(a)
        self._apply_faults(b)

    def partition(self, node: str) -> None:
        """Cut `node` from every other node; clients still reach it (and it them)."""
        for other in self.nodes:
            if other != node:
                self.cuts.add(frozenset((node, other)))
        for n in self.nodes:
            self._apply_faults(n)

    def loss(self, node: str, percent: int) -> None:
        """Drop `percent` % of the packets to and from `node` on the wire, at its bridge
        port (0 = none); the node's own stack never sees a drop."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be 0..100")
        self.losses[node] = percent
        self._apply_loss()

    def delay(self, node: str, seconds: float) -> None:
        """Hold every chunk of `node`'s links `seconds` in each direction (0 = none)."""
        if not self.delay_relays:
            raise RuntimeError("delay() needs NetFarm(delay_relays=True)")
        self.delays[node] = seconds
        self._write_relay_controls()

    def _write_relay_controls(self) -> None:
        for n in self.nodes:
            control = {
                "default": self.delays.get(n, 0.0),
                "by_source": {self.ips[o]: d for o, d in self.delays.items() if o != n and d},
            }
            path = self.workdir / f"relay-{n}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(control))
            tmp.replace(path)

    def heal_all(self) -> None:
        """Remove every cut, loss and delay."""
        self.cuts.clear()
        self.losses.clear()
        for n in self.nodes:
            self._apply_faults(n)
        self._apply_loss()
        if self.delays:
            self.delays.clear()
            self._write_relay_controls()

    # ------------------------------------------------------------------ logs

    def logs(self, node: str) -> str:
        try:
            return self.log_path(node).read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, node: str, lines: int = 60) -> str:
        return "\n".join(self.logs(node).splitlines()[-lines:])

    def all_logs(self, lines: int = 60) -> str:
        return "\n".join(
            f"----- node {n} (last {lines} lines) -----\n{self.log_tail(n, lines)}"
            for n in self.nodes
        )

    def events(
        self, node: str, event: str | Iterable[str] | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        """JSON log records of `node` (optionally of these events, at or after `since`).

        Each record gets ``_t``, its timestamp in epoch seconds.
        """
        wanted = {event} if isinstance(event, str) else set(event) if event else None
        out = []
        for line in self.logs(node).splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict) or (wanted and rec.get("event") not in wanted):
                continue
            try:
                rec["_t"] = parse_ts(str(rec.get("timestamp")))
            except ValueError:
                rec["_t"] = 0.0
            if since is None or rec["_t"] >= since:
                out.append(rec)
        return out

    def first_loss_of(self, observer: str, node: str, since: float) -> dict[str, Any] | None:
        """The first record at or after `since` by which `observer` stops counting `node` live.

        That is a ``farm_view`` without it or a ``node_state`` making it dead.
        """
        for rec in self.events(observer, ("farm_view", "node_state"), since):
            if rec["event"] == "farm_view" and node not in (rec.get("live") or []):
                return rec
            if (
                rec["event"] == "node_state"
                and rec.get("peer") == node
                and str(rec.get("new")).lower() == "dead"
            ):
                return rec
        return None

    def first_state(
        self, observer: str, node: str, state: str, since: float
    ) -> dict[str, Any] | None:
        """The first ``node_state`` record at or after `since` where `observer` moves `node`
        to `state` (alive, suspect, dead, draining, left)."""
        for rec in self.events(observer, "node_state", since):
            if rec.get("peer") == node and str(rec.get("new")).lower() == state:
                return rec
        return None

    def wait_back(self, node: str, since: float, timeout: float = 20.0) -> float:
        """Wait until every other running node logged a link_up from `node` after `since`
        and its latest farm_view counts `node` live, and every entry routes to `node`.

        Returns the time the views agreed (before the routing probe).
        """
        from tests.support.wait import eventually_passes  # not at the top: the relay runs this file

        observers = [o for o in self.nodes if o != node and self.running(o)]
        started = time.monotonic()

        def live_in_every_view() -> float:
            missing = []
            for o in observers:
                ups = [e for e in self.events(o, "link_up", since) if e.get("peer") == node]
                views = self.events(o, "farm_view")
                if not ups or not views or node not in (views[-1].get("live") or []):
                    missing.append(o)
            assert not missing, f"not in the views of {missing}"
            return time.time()

        try:
            t = eventually_passes(
                live_in_every_view, timeout=timeout, what=f"node {node} not live again"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.all_logs()}") from None
        left = timeout - (time.monotonic() - started)
        self.wait_ready(timeout=max(1.0, left), homes=[node])
        return t

    # ------------------------------------------------------------------ clients

    def loadgen(self, mode: str, *args: str) -> LoadRun:
        """Start tests/support/loadgen.py `mode` in the client namespace."""
        self._loadgen_n += 1
        out = self.workdir / f"load-{self._loadgen_n}-{mode}.json"
        err = out.with_suffix(".err")
        extra = ["--sources", ",".join(CLIENT_SOURCES)] if mode == "steady" else []
        popen = self._spawn(
            self.client_ns,
            [str(LOADGEN), mode, "--out", str(out), *extra, *args],
            err,
            stdout_pipe=True,
        )
        run = LoadRun(popen, out)
        self.loads.append(run)
        return run

    def wait_ready(
        self,
        timeout: float = 30.0,
        entries: Iterable[str] | None = None,
        homes: Iterable[str] | None = None,
    ) -> None:
        """Wait until every entry answers a request for every home, through the bridge."""
        entries = list(entries or [n for n in self.nodes if self.running(n)])
        homes = list(homes or [n for n in self.nodes if self.running(n)])
        for n, p in self.lb_procs.items():
            if p.popen.poll() is not None and not p.expected_exit:
                raise RuntimeError(f"node {n} exited ({p.popen.returncode}):\n{self.log_tail(n)}")
        run = self.loadgen(
            "ready",
            "--entries",
            self.entries_arg(entries),
            "--cookies",
            self.cookies_arg(homes),
            "--timeout",
            str(timeout),
        )
        res = run.result(timeout=timeout + 15)
        if not res.get("ready"):
            raise RuntimeError(
                f"farm not ready within {timeout} s; missing {res.get('missing')}\n"
                + self.all_logs()
            )

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        """Stop every process, delete every nft table and namespace of this farm."""
        if self.closed:
            return
        self.closed = True
        for run in self.loads:
            run.kill()
        procs = [*self.lb_procs.values(), *self.backend_procs.values(), *self.relay_procs.values()]
        for p in procs:
            if p.popen.poll() is None:
                p.expected_exit = True
                for sig in (signal.SIGCONT, signal.SIGTERM):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.popen.pid, sig)
        deadline = time.monotonic() + 3.0
        for p in procs:
            try:
                p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait(timeout=5)
            if p.popen.stdout is not None:
                p.popen.stdout.close()
        for ns in reversed(self.namespaces):
            _delete_ns(ns)
        self.namespaces.clear()
        with contextlib.suppress(ValueError):
            ACTIVE_NETFARMS.remove(self)

    def __enter__(self) -> NetFarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- the relay


class _Delays:
    """The relay's delay settings, re-read from the control file when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime = 0.0
        self.default = 0.0
        self.by_source: dict[str, float] = {}
        self.reload()

    def reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
            if mtime == self.mtime:
                return
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        self.mtime = mtime
        self.default = float(data.get("default", 0.0))
        self.by_source = {k: float(v) for k, v in (data.get("by_source") or {}).items()}

    def for_source(self, ip: str) -> float:
        return max(self.default, self.by_source.get(ip, 0.0))


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    other: asyncio.StreamWriter,
    delay: _Delays,
    source: str,
) -> None:
    """Copy reader -> writer, each chunk due `delay` after it arrived, in order.

    EOF is passed on as a half-close; a reset or error aborts both sockets.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay.for_source(source), data or None))
            if not data:
                return

    async def drain() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(drain())]
    try:
        await asyncio.gather(*tasks)
    except (OSError, asyncio.IncompleteReadError):
        for t in tasks:
            t.cancel()
        for w in (writer, other):
            w.transport.abort()


async def _relay(listen: str, upstream: str, control: Path) -> None:
    delays = _Delays(control)
    lhost, lport = listen.rsplit(":", 1)
    uhost, uport = upstream.rsplit(":", 1)

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        source = str(w.get_extra_info("peername")[0])
        try:
            ur, uw = await asyncio.open_connection(uhost, int(uport))
        except OSError:
            w.transport.abort()
            return
        await asyncio.gather(
            _pipe(r, uw, w, delays, source),
            _pipe(ur, w, uw, delays, source),
            return_exceptions=True,
        )
        for x in (w, uw):
            x.close()

    async def watch() -> None:
        while True:
            await asyncio.sleep(0.05)
            delays.reload()

    if str(ROOT) not in sys.path:  # run as a script: make `tests.support` importable
        sys.path.insert(0, str(ROOT))
    from tests.support.request_reader import serve_until_signalled

    server = await asyncio.start_server(handle, lhost, int(lport), backlog=256)
    watcher = asyncio.ensure_future(watch())
    await serve_until_signalled(server)
    watcher.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="netns harness tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    relay = sub.add_parser("relay", help="a delaying TCP relay (run inside a node namespace)")
    relay.add_argument("--listen", required=True)
    relay.add_argument("--upstream", required=True)
    relay.add_argument("--control", required=True, type=Path)
    sub.add_parser("cleanup", help="remove namespaces left by crashed runs")
    args = parser.parse_args(argv)
    if args.cmd == "cleanup":
        for name in cleanup_leftovers():
            print("removed", name)
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_relay(args.listen, args.upstream, args.control))
    return 0


if __name__ == "__main__":
    sys.exit(main())

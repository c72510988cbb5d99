"""A real-process lb farm on loopback for the integration tests, and raw HTTP client helpers.

`Farm` writes a farm file, starts one test backend per node and service and one
`python -m lb run` process per node, waits until every entry reaches every
home, and offers the controls the tests need (signals, restarts, the
SIGUSR1 table dump, the node logs). Everything runs in its own process group
and is killed at `close()`, also after a failed test.

This module must not import lb's I/O layer: it drives lb only as an operator
would (config file, processes, sockets, signals); the one lb class it uses is
the home-cookie keyring, to sign cookies like a node does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.wait import eventually, eventually_passes

BACKEND = Path(__file__).with_name("backend.py")
HOST = "127.0.0.1"
COOKIE_NAME = "lbhome"

DEFAULT_LIMITS: dict[str, Any] = {
    "head_bytes": 16384,
    "head_timeout": 2.0,
    "connect_timeout": 2.0,
    "pending_timeout": 2.0,
    "ping_interval": 0.2,
    "dead_after": 1.0,
}

# service name -> (protocol, extractors as TOML inline tables)
DEFAULT_SERVICES: dict[str, tuple[str, str]] = {
    "web": (
        "http",
        '[ { kind = "home-cookie" }, { kind = "uri-path", segments = 2, prefix = "/cart/" } ]',
    ),
    "raw": ("tcp", '[ { kind = "client-ip" } ]'),
}

#: a tls-terminate service routed by the home cookie (the tests give it `tls = {...}`)
TLS_TERMINATE_SERVICE: tuple[str, str] = ("tls-terminate", '[ { kind = "home-cookie" } ]')

#: service protocol -> the test backend's mode that plays its application
BACKEND_MODES = {"http": "http", "tcp": "tcp", "tls-terminate": "http", "tls-passthrough": "https"}


def make_cert(workdir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1, made by the real openssl CLI."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


#: Every farm not yet closed, so a failing test's report can show their logs.
ACTIVE_FARMS: list[Farm] = []


#: Ports handed out lately by `free_ports`, newest last. The kernel may give a
#: port that one call closed to the next call, and two calls often serve one
#: farm (its listeners, then its admin listeners), so no port is given twice
#: while it is in this window.
_RECENT_PORTS: collections.deque[int] = collections.deque(maxlen=4096)


def free_ports(n: int) -> list[int]:
    """`n` loopback ports that were free a moment ago, distinct from each other
    and from the last few thousand this process handed out."""
    socks = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)  # held open until the end, so no repeat within one call
            port = s.getsockname()[1]
            if port not in _RECENT_PORTS:
                ports.append(port)
        _RECENT_PORTS.extend(ports)
        return ports
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies (Linux), so no
    farm process outlives a killed test run."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    # The death signal follows the thread that forks: only tie it to the main thread.
    main = threading.current_thread() is threading.main_thread()
    if main and sys.platform.startswith("linux"):
        kwargs["preexec_fn"] = _die_with_parent
    return subprocess.Popen(args, start_new_session=True, **kwargs)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def _host_port(address: tuple[str, int]) -> str:
    """host:port, an IPv6 host in brackets."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class NodePorts:
    name: str
    forward: int
    listen: dict[str, int]
    apps: dict[str, int]


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    expected_exit: bool = False


@dataclass
class Farm:
    """A farm of real lb node processes with test backends, on loopback."""

    workdir: Path
    nodes: tuple[str, ...] = ("a", "b", "c")
    services: Mapping[str, tuple[str, str]] = field(default_factory=lambda: dict(DEFAULT_SERVICES))
    limits: Mapping[str, Any] = field(default_factory=dict)
    name: str = "t"
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)
    log_level: str = "info"
    #: extra TOML lines per service (e.g. the tls table of a tls-terminate service)
    service_extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: (cert, key) PEM files for https backends (the applications of tls-passthrough services)
    tls_files: tuple[Path, Path] | None = None
    #: processes per node (the harness default is 1; lb's own default is one per CPU)
    workers: int = 1
    #: "mtls" (lb's default: certificates from `lb certs` in workdir/certs) or "plaintext"
    link_security: str = "mtls"
    #: the application script started per node and service (same command line as backend.py)
    backend: Path = BACKEND
    #: extra command-line options for every backend (e.g. backend_ext.py's --close-after)
    backend_args: tuple[str, ...] = ()
    #: extra environment of a node's processes, per node (e.g. tests/support/faults' switches)
    node_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: the hosts each service of each node listens on, all on the service's one port; more
    #: than one gives `listen` a list (the first is the primary, and what `addr` gives)
    listen_hosts: tuple[str, ...] = (HOST,)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        svc = list(self.services)
        ports = iter(free_ports(len(self.nodes) * (1 + 2 * len(svc))))
        self.ports: dict[str, NodePorts] = {}
        for n in self.nodes:
            self.ports[n] = NodePorts(
                n,
                next(ports),
                {s: next(ports) for s in svc},
                {s: next(ports) for s in svc},
            )
        if self.link_security == "mtls":
            from lb.certs import ensure_certs

            ensure_certs(self.workdir / "certs", self.name, list(self.nodes))
        self.config_path = self.workdir / "farm.toml"
        self.config_path.write_text(self.config_text())
        self.lb_procs: dict[str, _Proc] = {}
        #: a node started from its own file instead of the farm's (a rolling change)
        self.node_configs: dict[str, Path] = {}
        self.backend_procs: dict[tuple[str, str], _Proc] = {}
        self.closed = False

    # ------------------------------------------------------------------ config

    def config_text(self) -> str:
        limits = dict(DEFAULT_LIMITS)
        limits.update(self.limits)
        lines = [
            "[farm]",
            f'name = "{self.name}"',
            f'secret = "{self.secret}"',
            f'link_security = "{self.link_security}"',
            *(['link_certs = "certs"'] if self.link_security == "mtls" else []),
            f'cookie_name = "{COOKIE_NAME}"',
            "",
            "[limits]",
        ]
        lines += [f"{k} = {_toml_value(v)}" for k, v in limits.items()]
        lines += ["", "[log]", f'level = "{self.log_level}"', 'format = "json"']
        for sname, (proto, extractors) in self.services.items():
            lines += [
                "",
                "[[services]]",
                f'name = "{sname}"',
                f'protocol = "{proto}"',
                f"extractors = {extractors}",
                *self.service_extra.get(sname, ()),
            ]
        for n in self.nodes:
            p = self.ports[n]
            listen = ", ".join(f"{s} = {self._listen_value(n, s)}" for s in p.listen)
            apps = ", ".join(f'{s} = "{HOST}:{port}"' for s, port in p.apps.items())
            lines += [
                "",
                "[[nodes]]",
                f'name = "{n}"',
                f'forward = "{HOST}:{p.forward}"',
                f"workers = {self.workers}",
                f"listen = {{ {listen} }}",
                f"apps = {{ {apps} }}",
            ]
        return "\n".join(lines) + "\n"

    def _listen_value(self, node: str, service: str) -> str:
        """`listen`'s TOML value for one service: a string, or an array of them."""
        texts = [json.dumps(_host_port(a)) for a in self.addrs(node, service)]
        return texts[0] if len(texts) == 1 else f"[{', '.join(texts)}]"

    # ------------------------------------------------------------------ addresses

    def addr(self, node: str, service: str = "web") -> tuple[str, int]:
        """The client-facing listen address of `node` for `service` (its primary one)."""
        return self.addrs(node, service)[0]

    def addrs(self, node: str, service: str = "web") -> list[tuple[str, int]]:
        """Every client-facing listen address of `node` for `service`, the primary first."""
        return [(host, self.ports[node].listen[service]) for host in self.listen_hosts]

    def url(self, node: str, path: str = "/", service: str = "web") -> str:
        return f"http://{_host_port(self.addr(node, service))}{path}"

    def sign_cookie(self, node: str, expires: int | None = None) -> str:
        """A home cookie value naming `node` as home, signed with the farm's secret."""
        from lb.routing.cookie import CookieKeyring

        keyring = CookieKeyring(self.name, self.secret.encode("utf-8"))
        value: str = keyring.sign(node, int(time.time()) + 3600 if expires is None else expires)
        return value

    def cookie_header(self, node: str) -> str:
        return f"{COOKIE_NAME}={self.sign_cookie(node)}"

    def log_path(self, node: str) -> Path:
        return self.workdir / f"node-{node}.log"

    # ------------------------------------------------------------------ processes

    def start(self, timeout: float = 20.0) -> None:
        """Start every backend and node; return once every entry reaches every home."""
        ACTIVE_FARMS.append(self)
        for n in self.nodes:
            for sname, (proto, _) in self.services.items():
                self._start_backend(n, sname, proto)
        for key in list(self.backend_procs):
            self._wait_backend(key, timeout)
        for n in self.nodes:
            self._start_node(n)
        self.wait_ready(timeout=timeout)
        if self.workers > 1:
            self._wait_every_worker_linked(timeout)

    def _wait_every_worker_linked(self, timeout: float) -> None:
        """Every worker process of every node has its outbound link to every peer and
        sees it alive. Each worker links on its own; one still without a link to a
        peer treats it as not placeable for that moment, so two workers of one node
        could place a client's new sessions differently right after start (the
        readiness probes above reach one worker of each node, whichever the kernel picks)."""

        def every_worker_linked() -> None:
            missing = []
            for n in self.nodes:
                records = self.events(n)
                for peer in self.nodes:
                    if peer == n:
                        continue
                    links = sum(
                        1
                        for r in records
                        if r.get("event") == "link_up"
                        and r.get("peer") == peer
                        and r.get("direction") == "out"
                    )
                    seeing = {
                        r.get("worker")
                        for r in records
                        if r.get("event") == "node_state"
                        and r.get("peer") == peer
                        and r.get("new") == "alive"
                    }
                    if links < self.workers or len(seeing) < self.workers:
                        missing.append(f"{n} -> {peer}: {links} links, alive to {sorted(seeing)}")
            assert not missing, missing

        eventually_passes(every_worker_linked, timeout=timeout, what="every worker linked")

    def _start_backend(self, node: str, service: str, proto: str) -> None:
        mode = BACKEND_MODES[proto]
        tls_args: list[str] = []
        if mode == "https":
            if self.tls_files is None:
                raise RuntimeError(f"service {service!r} needs Farm(tls_files=(cert, key))")
            tls_args = ["--cert", str(self.tls_files[0]), "--key", str(self.tls_files[1])]
        log = (self.workdir / f"backend-{node}-{service}.log").open("ab")
        with log:
            popen = _spawn(
                [
                    sys.executable,
                    str(self.backend),
                    "--node",
                    node,
                    "--port",
                    str(self.ports[node].apps[service]),
                    "--host",
                    HOST,
                    "--mode",
                    mode,
                    *tls_args,
                    *self.backend_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self.backend_procs[(node, service)] = _Proc(popen)

    def _wait_backend(self, key: tuple[str, str], timeout: float) -> None:
        popen = self.backend_procs[key].popen
        assert popen.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"backend {key} did not print ready within {timeout} s")
            ready, _, _ = select.select([popen.stdout], [], [], left)
            if ready:
                ch = os.read(popen.stdout.fileno(), 1)
                if not ch:
                    raise RuntimeError(f"backend {key} exited before it was ready")
                line += ch
        if line.strip() != b"ready":
            raise RuntimeError(f"backend {key} printed {line!r} instead of ready")

    def _start_node(self, node: str) -> None:
        with self.log_path(node).open("ab") as log:
            popen = _spawn(
                [
                    sys.executable,
                    "-m",
                    "lb",
                    "run",
                    "--config",
                    str(self.node_configs.get(node, self.config_path)),
                    "--node",
                    node,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **self.node_env[node]} if node in self.node_env else None,
            )
        self.lb_procs[node] = _Proc(popen)

    def pid(self, node: str) -> int:
        return self.lb_procs[node].popen.pid

    def rss_mib(self, node: str) -> float:
        """Resident memory of node `node`'s process, in MiB."""
        for line in Path(f"/proc/{self.pid(node)}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no VmRSS for node {node}")

    def kill(self, node: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the process group of node `node` (SIGKILL waits for the exit)."""
        proc = self.lb_procs[node]
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            proc.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)
        if sig == signal.SIGKILL:
            proc.popen.wait(timeout=5)

    def restart(self, node: str, timeout: float = 20.0) -> None:
        """Start node `node` again (killing it first if it runs) and wait for the farm."""
        proc = self.lb_procs[node]
        if proc.popen.poll() is None:
            self.kill(node, signal.SIGKILL)
        self._start_node(node)
        self.wait_ready(timeout=timeout)

    def stop_backend(self, node: str, service: str = "web") -> None:
        """Stop the application of `node` for `service`: its port then refuses connections."""
        proc = self.backend_procs[(node, service)]
        proc.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=5)
        if proc.popen.stdout is not None:
            proc.popen.stdout.close()

    def start_backend(self, node: str, service: str = "web", timeout: float = 10.0) -> None:
        self._start_backend(node, service, self.services[service][0])
        self._wait_backend((node, service), timeout)

    def unexpected_exits(self) -> list[str]:
        """Nodes and backends that exited although no test stopped them."""
        out = []
        for n, p in self.lb_procs.items():
            if not p.expected_exit and p.popen.poll() is not None:
                out.append(f"node {n} (exit code {p.popen.returncode})")
        for (n, s), p in self.backend_procs.items():
            if not p.expected_exit and p.popen.poll() is not None:
                out.append(f"backend {n}/{s} (exit code {p.popen.returncode})")
        return out

    # ------------------------------------------------------------------ readiness

    def _probe_http(self, entry: str, home: str) -> bool:
        conn = http.client.HTTPConnection(*self.addr(entry), timeout=1.0)
        try:
            conn.request("GET", "/__ready", headers={"Cookie": self.cookie_header(home)})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                return False
            return bool(json.loads(body).get("node") == home)
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            conn.close()

    def _probe_tcp(self, entry: str, service: str) -> bool:
        try:
            with socket.create_connection(self.addr(entry, service), timeout=1.0) as s:
                data = b""
                while not data.endswith(b"\n") and len(data) < 100:
                    chunk = s.recv(100)
                    if not chunk:
                        return False
                    data += chunk
                return data.startswith(b"node=")
        except OSError:
            return False

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until every (entry, home) pair answers through the links; raise with logs if not."""
        http_services = [s for s, (p, _) in self.services.items() if p == "http"]
        tcp_services = [s for s, (p, _) in self.services.items() if p == "tcp"]
        todo: set[tuple[str, str, str]] = set()
        for entry in self.nodes:
            if "web" in http_services:
                todo |= {("http", entry, home) for home in self.nodes}
            todo |= {("tcp", entry, s) for s in tcp_services}

        def every_pair_answers() -> None:
            for n, p in self.lb_procs.items():
                if p.popen.poll() is not None and not p.expected_exit:
                    raise RuntimeError(
                        f"node {n} exited with code {p.popen.returncode} while starting:\n"
                        + self.log_tail(n)
                    )
            for item in sorted(todo):
                kind, entry, other = item
                ok = (
                    self._probe_http(entry, other)
                    if kind == "http"
                    else self._probe_tcp(entry, other)
                )
                if ok:
                    todo.discard(item)
            assert not todo, f"missing {sorted(todo)}"

        if not todo:
            return
        try:
            eventually_passes(every_pair_answers, timeout=timeout, what="farm not ready")
        except AssertionError as exc:
            raise RuntimeError(f"{exc}\n{self.all_logs()}") from None

    # ------------------------------------------------------------------ logs and tables

    def logs(self, node: str) -> str:
        try:
            return self.log_path(node).read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, node: str, lines: int = 80) -> str:
        return "\n".join(self.logs(node).splitlines()[-lines:])

    def all_logs(self, lines: int = 80) -> str:
        return "\n".join(
            f"----- node {n} (last {lines} lines) -----\n{self.log_tail(n, lines)}"
            for n in self.nodes
        )

    def events(self, node: str, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON log records of `node`, optionally only those with this "event"."""
        out = []
        for line in self.logs(node).splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and (event is None or rec.get("event") == event):
                out.append(rec)
        return out

    def tables(self, node: str, timeout: float = 3.0) -> dict[str, Any]:
        """Ask `node` for its flow tables (SIGUSR1) and return the "tables" record it logs."""
        path = self.log_path(node)
        start = path.stat().st_size if path.exists() else 0
        os.kill(self.pid(node), signal.SIGUSR1)

        def tables_record() -> dict[str, Any] | None:
            with path.open("rb") as f:
                f.seek(start)
                new = f.read()
            for raw in reversed(new.splitlines()):
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("event") == "tables":
                    return rec
            return None

        found = eventually(
            tables_record,
            timeout=timeout,
            interval=0.05,
            what=f"node {node} logged no tables record",
        )
        assert found is not None
        return found

    @staticmethod
    def leftover_flows(
        tables: Mapping[str, Any], pooled: Mapping[tuple[str, str], set[int]] | None = None
    ) -> list[str]:
        """Every flow still in a pending or forward table (or a local exchange), as text.

        `pooled` maps (entry node, home node) to the ids of flows the entry keeps idle
        in its upstream pool: those are kept on purpose (at both ends), not left behind.
        """
        me = tables.get("node")
        pooled = pooled or {}
        left = []
        forward = 0
        for link, t in (tables.get("links") or {}).items():
            peer, _, direction = link.partition(" ")
            pair = (me, peer) if direction == "out" else (peer, me)
            kept = pooled.get(pair, set())  # type: ignore[arg-type]
            for kind in ("pending", "forward"):
                ids = [i for i in t.get(kind) or [] if kind == "pending" or i not in kept]
                if kind == "forward":
                    forward += len(ids)
                if ids:
                    left.append(f"{link} {kind}: {ids}")
        if tables.get("pending"):
            left.append(f"pending = {tables['pending']}")
        if forward:
            left.append(f"forward = {forward}")
        if tables.get("local"):
            left.append(f"local = {tables['local']}")
        return left

    @staticmethod
    def pooled_flows(
        all_tables: Mapping[str, Mapping[str, Any]],
    ) -> dict[tuple[str, str], set[int]]:
        """(entry, home) -> ids of the flows the entry keeps idle in its pool."""
        out: dict[tuple[str, str], set[int]] = {}
        for node, tables in all_tables.items():
            for home, ids in (tables.get("pooled") or {}).items():
                out.setdefault((node, home), set()).update(i for i in ids if i)
        return out

    def assert_clean(self, nodes: Iterable[str] | None = None, timeout: float = 3.0) -> None:
        """Poll the tables of `nodes` (default: every running node) until no flow is left
        but the idle pooled flows the entries keep (checked against both ends)."""
        names = list(nodes) if nodes is not None else self.running_nodes()
        everyone = self.running_nodes()

        def no_flow_left() -> None:
            # a node that logs no tables record spends the whole timeout: not retried
            all_tables = {n: self.tables(n, timeout=timeout) for n in set(names) | set(everyone)}
            pooled = self.pooled_flows(all_tables)
            dirty = {}
            for n in names:
                left = self.leftover_flows(all_tables[n], pooled)
                if left:
                    dirty[n] = left
            assert not dirty, f"{dirty}"

        eventually_passes(no_flow_left, timeout=timeout, interval=0.2, what="flows left behind")

    def assert_no_pooled_flows(self, node: str, timeout: float = 3.0) -> None:
        """Poll `node` until its upstream pool holds no flow (pool_idle_timeout passed)."""

        def empty() -> None:
            pooled = self.tables(node, timeout=timeout).get("pooled") or {}
            assert not any(any(ids) for ids in pooled.values()), pooled

        eventually_passes(empty, timeout=timeout, interval=0.2, what="pooled flows expired")

    def running_nodes(self) -> list[str]:
        return [n for n, p in self.lb_procs.items() if p.popen.poll() is None]

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        """Stop every process of the farm (continue stopped ones, TERM, then KILL)."""
        if self.closed:
            return
        self.closed = True
        procs = list(self.lb_procs.values()) + list(self.backend_procs.values())
        for p in procs:
            if p.popen.poll() is None:
                p.expected_exit = True
                for sig in (signal.SIGCONT, signal.SIGTERM):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(p.popen.pid, sig)
        deadline = time.monotonic() + 3.0
        for p in procs:
            try:
                p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait(timeout=5)
        for p in procs:
            # Whatever the node left in its group (workers) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.popen.pid, signal.SIGKILL)
            if p.popen.stdout is not None:
                p.popen.stdout.close()
        with contextlib.suppress(ValueError):
            ACTIVE_FARMS.remove(self)

    def __enter__(self) -> Farm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- raw HTTP client


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    def set_cookie(self, name: str) -> str | None:
        """The full Set-Cookie header that sets cookie `name`, if any."""
        for v in self.all("set-cookie"):
            if v.split("=", 1)[0].strip() == name:
                return v
        return None

    def cookie_value(self, name: str) -> str | None:
        header = self.set_cookie(name)
        if header is None:
            return None
        return header.split("=", 1)[1].split(";", 1)[0].strip()


def request_bytes(
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    host: str = "lb.test",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Read one response with a Content-Length body (raises IncompleteReadError on a short one)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
    resp = Response(status, headers, b"")
    length = resp.header("content-length")
    if length is not None:
        resp.body = await reader.readexactly(int(length))
    elif resp.header("connection") == "close" or status >= 400:
        resp.body = await reader.read()
    return resp


async def open_conn(
    addr: tuple[str, int], limit: int = 2**20
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(addr[0], addr[1], limit=limit)


async def http_request(
    addr: tuple[str, int],
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    half_close: bool = False,
    timeout: float = 20.0,
) -> Response:
    """One request on a fresh connection; `half_close` shuts down the sending side after it."""
    async with asyncio.timeout(timeout):
        reader, writer = await open_conn(addr)
        try:
            writer.write(request_bytes(method, path, headers, body))
            await writer.drain()
            if half_close:
                writer.write_eof()
            return await read_response(reader)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def read_until_closed(
    reader: asyncio.StreamReader,
) -> tuple[bytes, str]:
    """Read until the peer ends the stream; return the bytes and "eof" or "reset"."""
    chunks: list[bytes] = []
    try:
        while True:
            chunk = await reader.read(2**20)
            if not chunk:
                return b"".join(chunks), "eof"
            chunks.append(chunk)
    except ConnectionResetError:
        return b"".join(chunks), "reset"

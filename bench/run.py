"""Side-by-side benchmark: lb against HAProxy and nginx, same machine, same load tool, same backend.

A script, not a test::

    .venv/bin/python bench/run.py [--quick] [--scenarios a,b] [--repeat N] [--duration S]
                                  [--json out.json] [--proxies lb,haproxy-http,...]
                                  [--profile DIR] [--no-pin] [--no-install]

It installs what it needs when missing (haproxy, nginx, wrk with apt-get when
run as root; otherwise it says what to install and exits with code 3), starts
one nginx backend (one worker; a small body on ``/`` and 1 MiB on ``/big``; one
port per backend node) and runs every scenario for lb (one process per node),
HAProxy (``nbthread 1``) and nginx (``worker_processes 1``) in turn. Each run is
repeated (default 3) and the median is reported, with the ratios lb/HAProxy
(http), lb/HAProxy (tcp) and lb/nginx measured in the same run. The repeats
alternate the proxies (repeat 1 of each, then repeat 2, ...), so lb's repeat i and
HAProxy's repeat i form a side-by-side pair; the ratios table gives the median of
those pair ratios and their range beside the ratio of medians. It prints one
markdown table and writes JSON (default ``bench/results/latest.json``).

Scenarios (``--scenarios``, comma separated; default all):

* ``local``            client -> proxy -> backend, keep-alive, tiny response
* ``forwarded``        client -> entry -> second hop -> backend (lb: over the link)
* ``local-close``      like ``local`` with ``Connection: close`` (a connection per request)
* ``forwarded-close``  like ``forwarded`` with ``Connection: close``
* ``bulk``             1 MiB responses on the local path, few connections, MiB/s
* ``pooled``           keep-alive connections that carry the cookies of two homes in turn
                       (an upstream proxy pooling many users): lb is a 2-node farm entered at
                       a; HAProxy (http) picks the server by cookie on every request; nginx
                       maps the cookie to an upstream per request; HAProxy (tcp): n/a;
                       HAProxy as a 2-node farm (``haproxy-farm``, pooled only): lb's
                       layout with an HAProxy per node, the entry's routing by cookie to
                       its own application or to the other node's HAProxy
* ``idle``             proxy RSS growth per 10,000 idle keep-alive client connections
* ``tls-passthrough``  TLS bytes relayed untouched (lb: n/a until it has a TLS listener)

``pooled`` drives wrk with a Lua script (written per run) that rotates the
cookies of the homes request by request and counts, from the backend's answer
(``node=X /p/Y``: node X answered a request for home Y), the share of responses
answered by the cookie's home: the ``home %`` column. A proxy that decides the
home once per connection still shows its throughput; its ``home %`` says how
many of those answers came from the wrong node.

CPU: every proxy process's utime+stime from /proc/PID/stat, before and after
each run, divided by the requests of the run. Pinning on 2+ CPUs: the proxies
on the first CPU, wrk, the backend and this script on the others.

This script measures only; it must not change lb, and it never reports a run
with socket errors or non-2xx answers as a clean number (such rows are flagged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EXIT_NO_TOOLS = 3
HOST = "127.0.0.1"
BIG_SIZE = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"
PROXIES = ("lb", "haproxy-http", "haproxy-tcp", "nginx", "haproxy-farm")
# not in the default set: lb with two workers per node, for the 1-vs-2-workers comparison
EXTRA_PROXIES = ("lb-w2", "lb-mtls", "lb-compiled")
PEERS = ("haproxy-http", "haproxy-tcp", "nginx", "haproxy-farm")
SCENARIOS = (
    "local",
    "forwarded",
    "local-close",
    "forwarded-close",
    "pooled",
    "bulk",
    "idle",
    "tls-passthrough",
    "tls-terminate",
)
LB_HAS_TLS_LISTENER = True  # lb's tls-passthrough service (off: the scenario shows n/a for lb)


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    duration: int = 10  # seconds per measured run (wrk takes whole seconds)
    warmup: int = 2  # seconds of unmeasured load before the first run of each proxy
    repeat: int = 3
    conns: int = 50  # keep-alive and close scenarios
    bulk_conns: int = 8
    idle_conns: int = 10_000
    quick: bool = False
    pin: bool = True
    settle: int = 0  # wait up to this many seconds for a quiet machine before each run


@dataclass(frozen=True)
class Scenario:
    name: str
    topology: str  # "local" | "forwarded" | "pooled" (homes a and b, entered at a)
    kind: str  # "wrk" | "idle"
    path: str = "/"
    close: bool = False
    tls: bool = False  # the application speaks TLS, the proxy relays it untouched
    terminate: bool = False  # the client speaks TLS to the proxy, the application HTTP
    bulk: bool = False
    title: str = ""

    @property
    def https(self) -> bool:
        """The client speaks TLS (to the application through the proxy, or to the proxy)."""
        return self.tls or self.terminate


SCENARIO_DEFS: dict[str, Scenario] = {
    "local": Scenario("local", "local", "wrk", title="local, keep-alive, tiny response"),
    "forwarded": Scenario(
        "forwarded", "forwarded", "wrk", title="forwarded (two hops), keep-alive, tiny response"
    ),
    "local-close": Scenario(
        "local-close", "local", "wrk", close=True, title="local, new connection per request"
    ),
    "forwarded-close": Scenario(
        "forwarded-close",
        "forwarded",
        "wrk",
        close=True,
        title="forwarded, new connection per request",
    ),
    "pooled": Scenario(
        "pooled",
        "pooled",
        "wrk",
        path="/p/",
        title="keep-alive connections rotating the cookies of two homes",
    ),
    "bulk": Scenario("bulk", "local", "wrk", path="/big", bulk=True, title="bulk 1 MiB, local"),
    "idle": Scenario("idle", "local", "idle", title="idle keep-alive connections, local"),
    "tls-passthrough": Scenario(
        "tls-passthrough", "local", "wrk", tls=True, title="TLS passthrough, keep-alive"
    ),
    "tls-terminate": Scenario(
        "tls-terminate",
        "local",
        "wrk",
        terminate=True,
        title="TLS terminated by the proxy, keep-alive, tiny response",
    ),
}

# What the issues ask of lb (issue 10 the latest): (metric, comparison, factor) against
# HAProxy in http mode.
TARGETS: dict[str, list[tuple[str, str, float]]] = {
    "local": [("rps", ">=", 1.0), ("cpu_us_per_req", "<=", 1.0)],
    "forwarded": [("rps", ">=", 1.5), ("cpu_us_per_req", "<=", 0.7)],
    "local-close": [("rps", ">=", 1.0)],
    "forwarded-close": [("rps", ">=", 1.2)],
    "pooled": [("rps", ">=", 1.0)],
    "bulk": [("mib_s", ">=", 1.0)],
    "idle": [("rss_kib_per_10k", "<=", 2.0)],
}


class BenchError(Exception):
    """A setup step failed (a process did not start, a tool is missing)."""


class ToolsMissing(BenchError):
    """haproxy, nginx or wrk is missing and cannot be installed here."""


# ---------------------------------------------------------------------------- tools


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def stream_module() -> str | None:
    for d in ("/usr/lib/nginx/modules", "/usr/share/nginx/modules", "/usr/lib64/nginx/modules"):
        p = Path(d) / "ngx_stream_module.so"
        if p.is_file():
            return str(p)
    return None


def ensure_tools(install: bool, tls: bool = True) -> dict[str, str]:
    """Paths of haproxy, nginx, wrk (and taskset, openssl when present); install when root.

    With `tls`, nginx's stream module (for TLS passthrough) is installed too if it can be.
    """
    needed = {"haproxy": "haproxy", "nginx": "nginx", "wrk": "wrk"}
    missing = [pkg for tool, pkg in needed.items() if find_tool(tool) is None]
    want_stream = tls and stream_module() is None
    if missing or want_stream:
        can_install = install and os.geteuid() == 0 and find_tool("apt-get") is not None
        if missing and not can_install:
            raise ToolsMissing(
                f"missing: {', '.join(missing)}. Install them (Debian/Ubuntu: "
                f"apt-get install -y {' '.join(missing)}) or run this script as root, "
                "where it installs them with apt-get."
            )
        if can_install:
            pkgs = [*missing, "libnginx-mod-stream"] if want_stream else missing
            print(f"installing {' '.join(pkgs)} with apt-get ...", file=sys.stderr)
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            ok = subprocess.run(["apt-get", "update", "-qq"], env=env, check=False).returncode == 0
            res = subprocess.run(
                ["apt-get", "install", "-y", "-qq", *pkgs],
                env=env,
                stdout=subprocess.DEVNULL,
                check=False,
            )
            if (not ok or res.returncode != 0) and missing:
                # the stream module is optional: retry with the required packages only
                res = subprocess.run(
                    ["apt-get", "install", "-y", "-qq", *missing],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    check=False,
                )
            still = [pkg for tool, pkg in needed.items() if find_tool(tool) is None]
            if still:
                raise ToolsMissing(f"apt-get could not install: {', '.join(still)}")
    tools = {tool: str(find_tool(tool)) for tool in needed}
    for opt in ("taskset", "openssl"):
        path = find_tool(opt)
        if path:
            tools[opt] = path
    return tools


def tool_version(argv: Sequence[str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    text = (res.stdout + res.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def lb_commit() -> str:
    """The commit of the lb under test, "+dirty" when lb/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "lb"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return "?"
    return (head or "?") + ("+dirty" if dirty else "")


def machine_info(tools: dict[str, str]) -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        import uvloop

        uv = str(getattr(uvloop, "__version__", "?"))
    except ImportError:
        uv = "not installed"
    return {
        "lb_commit": lb_commit(),
        # the checkout's build, which the proxy "lb" runs ("lb-compiled" is always compiled)
        "lb_build": "compiled" if any((ROOT / "lb").rglob("*.cpython-*.so")) else "pure Python",
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvloop": uv,
        "haproxy": tool_version([tools["haproxy"], "-v"]),
        "nginx": tool_version([tools["nginx"], "-v"]),
        "wrk": tool_version([tools["wrk"], "-v"]),
    }


# ---------------------------------------------------------------------------- processes


def raise_nofile(want: int = 200_000) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            target = hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (by PPid), as seen right now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids: Sequence[int], user_only: bool = False) -> int:
    """utime+stime (or utime only) of these processes so far, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11])  # utime (field 14)
        if not user_only:
            total += int(fields[12])  # stime (field 15)
    return total


def rss_kib(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def per_cpu_ticks() -> dict[str, tuple[int, int, int]]:
    """Per CPU ("cpu0", ...): (busy, softirq+irq, total) ticks so far, from /proc/stat."""
    out: dict[str, tuple[int, int, int]] = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *rest = line.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                v = [int(x) for x in rest[:8]]
                out[name] = (sum(v) - v[3] - v[4], v[5] + v[6], sum(v))
    except (OSError, ValueError):
        return {}
    return out


def system_busy_ticks() -> int:
    """Busy ticks of the whole machine so far (/proc/stat: all but idle and iowait).

    A process's stime includes the softirq ticks taken while it ran (/proc/stat
    counts those as softirq), so the same total is needed to subtract our processes.
    """
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return -1
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    return sum(fields[:8]) - fields[3] - fields[4]


def children_ticks() -> int:
    """CPU ticks of this script's waited-for children (wrk runs), so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((ru.ru_utime + ru.ru_stime) * CLK_TCK)


def enter_private_netns() -> str | None:
    """Move this process (and so every process it starts) into a fresh network namespace.

    Only loopback exists there: no other traffic disturbs the TCP counters, no
    other program competes for ports. Returns None on success, else why not.
    """
    import ctypes
    import fcntl
    import struct

    clone_newnet = 0x40000000
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(clone_newnet) != 0:
            return os.strerror(ctypes.get_errno())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifr = fcntl.ioctl(s, siocgifflags, struct.pack("16sh22x", b"lo", 0))
            flags = struct.unpack("16sh22x", ifr)[1]
            fcntl.ioctl(s, siocsifflags, struct.pack("16sh22x", b"lo", flags | iff_up))
    except OSError as exc:
        return str(exc)
    return None


def tcp_active_opens() -> int:
    """Outgoing TCP connections opened in this network namespace so far (/proc/net/snmp)."""
    try:
        lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()]
    except OSError:
        return -1
    tcp = [ln for ln in lines if ln and ln[0] == "Tcp:"]
    if len(tcp) < 2:
        return -1
    return int(tcp[1][tcp[0].index("ActiveOpens")])


class Proc:
    """One started process (in its own session, so it and its children stop together)."""

    registry: list[Proc] = []

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        cpus: str | None,
        tools: dict[str, str],
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        full = list(argv)
        if cpus and "taskset" in tools:
            full = [tools["taskset"], "-c", cpus, *full]
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
            )
        Proc.registry.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        return descendants(self.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # stragglers of the group (nginx workers)
        if self in Proc.registry:
            Proc.registry.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for p in list(cls.registry):
            p.stop()


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------- context


@dataclass
class Ctx:
    settings: Settings
    tools: dict[str, str]
    workdir: Path
    proxy_cpus: str | None
    load_cpus: str | None
    wrk_threads: int
    nofile: int
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    farm: str = "bench"
    backend_ports: dict[str, int] = field(default_factory=dict)  # "a", "b", "tls-a"
    tls_files: tuple[Path, Path] | None = None  # (cert, key) PEM, made with the backend
    backend: Proc | None = None
    netns: bool = False
    counter: int = 0

    def fresh_dir(self, name: str) -> Path:
        self.counter += 1
        d = self.workdir / f"{self.counter:03d}-{name}"
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        # nginx workers started by root run as an unprivileged user: let them read and write
        d.chmod(0o755)
        (d / "tmp").chmod(0o1777)
        return d

    def cookie(self, home: str) -> str:
        from lb.routing.cookie import CookieKeyring

        keyring = CookieKeyring(self.farm, self.secret.encode("utf-8"))
        value = keyring.sign(home, int(time.time()) + 7 * 86400)
        # one header for every proxy: lb's home cookie and HAProxy's persistence cookie
        return f"lbhome={value}; SRV={home}"


def pinning(settings: Settings) -> tuple[str | None, str | None, int]:
    cpus = sorted(os.sched_getaffinity(0))
    if not settings.pin or len(cpus) < 2:
        return None, None, 1
    load = cpus[1:]
    return str(cpus[0]), ",".join(map(str, load)), max(1, min(len(load), 4))


# ---------------------------------------------------------------------------- backend


def nginx_temp_paths(d: Path) -> str:
    t = d / "tmp"
    return "\n".join(
        f"    {k}_temp_path {t}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def start_backend(ctx: Ctx) -> Proc:
    d = ctx.fresh_dir("backend")
    big = d / "big.bin"
    big.write_bytes(os.urandom(BIG_SIZE))
    a, b, ta = free_ports(3)
    ctx.backend_ports = {"a": a, "b": b}
    servers = []
    for node, port in (("a", a), ("b", b)):
        servers.append(
            f"""    server {{
        listen {HOST}:{port} backlog=4096;
        location = /big {{ alias {big}; default_type application/octet-stream; }}
        location /p/ {{ return 200 "node={node} $uri\\n"; }}
        location / {{ return 200 "node={node}\\n"; }}
    }}"""
        )
    if "openssl" in ctx.tools:
        key, crt = d / "key.pem", d / "cert.pem"
        res = subprocess.run(
            [
                *(ctx.tools["openssl"], "req", "-x509", "-newkey", "ec", "-pkeyopt"),
                *("ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"),
                *("-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)),
            ],
            capture_output=True,
            check=False,
        )
        if res.returncode == 0:
            ctx.backend_ports["tls-a"] = ta
            ctx.tls_files = (crt, key)
            servers.append(
                f"""    server {{
        listen {HOST}:{ta} ssl backlog=4096;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        location = /big {{ alias {big}; default_type application/octet-stream; }}
        location / {{ return 200 "node=a\\n"; }}
    }}"""
            )
    conf = d / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
worker_rlimit_nofile {ctx.nofile};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections {max(1024, ctx.nofile - 500)}; }}
http {{
    access_log off;
    default_type text/plain;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 600s;
    keepalive_requests 1000000000;
{nginx_temp_paths(d)}
{chr(10).join(servers)}
}}
"""
    )
    proc = Proc(
        "backend",
        [ctx.tools["nginx"], "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)],
        d / "out.log",
        ctx.load_cpus,
        ctx.tools,
    )
    for node, port in ctx.backend_ports.items():
        expect = "node=a" if node == "tls-a" else f"node={node}"
        wait_http([proc], port, expect, "", tls=node == "tls-a", path="/big")
    return proc


# ---------------------------------------------------------------------------- probes


def http_get(
    port: int, path: str, cookie: str, tls: bool, timeout: float = 2.0
) -> tuple[int, bytes]:
    conn: http.client.HTTPConnection
    if tls:
        sslctx = ssl.create_default_context()
        sslctx.check_hostname = False
        sslctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(HOST, port, timeout=timeout, context=sslctx)
    else:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Cookie": cookie} if cookie else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_http(
    procs: Sequence[Proc],
    port: int,
    expect: str,
    cookie: str,
    tls: bool,
    path: str = "/",
    timeout: float = 20.0,
) -> None:
    """Wait until GET / through `port` answers 200 with `expect` in the body; then check
    that `path` answers 200 too (the 1 MiB body for /big)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise BenchError(f"{p.name} exited while starting:\n{p.log_tail()}")
        try:
            status, body = http_get(port, "/", cookie, tls)
            if status == 200 and expect.encode() in body:
                break
            last = f"status {status}, body {body[:64]!r}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    else:
        tails = "\n".join(f"--- {p.name}:\n{p.log_tail()}" for p in procs)
        raise BenchError(f"port {port} not ready ({last}); expected {expect!r}\n{tails}")
    if path != "/":
        status, body = http_get(port, path, cookie, tls, timeout=10.0)
        want = BIG_SIZE if path == "/big" else None
        if status != 200 or (want is not None and len(body) != want):
            raise BenchError(f"GET {path} on port {port}: status {status}, {len(body)} bytes")


# ---------------------------------------------------------------------------- proxies


@dataclass
class Running:
    """A started proxy setup: where clients connect and which processes to account."""

    key: str
    procs: list[Proc]
    port: int
    cookie: str
    expect: str
    # pooled: home -> the cookie that selects it (the wrk script rotates these)
    homes: dict[str, str] = field(default_factory=dict)

    def pids(self) -> list[int]:
        out: list[int] = []
        for p in self.procs:
            out.extend(p.pids())
        return out

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


class ProxyKind:
    key = ""
    label = ""

    def unsupported(self, ctx: Ctx, scenario: Scenario) -> str | None:
        """Why this proxy cannot run `scenario` (None: it can)."""
        return None

    def start(self, ctx: Ctx, scenario: Scenario) -> Running:
        raise NotImplementedError


def _target_port(ctx: Ctx, scenario: Scenario, home: str) -> int:
    return ctx.backend_ports["tls-a" if scenario.tls else home]


def _no_certificate(ctx: Ctx, scenario: Scenario) -> str | None:
    if scenario.terminate and ctx.tls_files is None:
        return "n/a (openssl missing: no certificate)"
    return None


def _home(scenario: Scenario) -> str:
    return "b" if scenario.topology == "forwarded" else "a"


POOLED_HOMES = ("a", "b")


def _pooled_homes(ctx: Ctx, scenario: Scenario) -> dict[str, str]:
    return {h: ctx.cookie(h) for h in POOLED_HOMES} if scenario.topology == "pooled" else {}


class LbProxy(ProxyKind):
    key = "lb"
    label = "lb"

    def __init__(self, workers: int = 1, mtls: bool = False, compiled: bool = False) -> None:
        self.workers = workers
        self.mtls = mtls  # links: mutual TLS (lb's default) or plaintext (the baseline)
        # a copy of this checkout's lb compiled with mypyc (setup.py), built once per run
        self.compiled = compiled
        if compiled:
            self.key = "lb-compiled"
            self.label = "lb (compiled)"
        if workers != 1:
            self.key = f"lb-w{workers}"
            self.label = f"lb ({workers} workers)"
        if mtls:
            self.key = "lb-mtls"
            self.label = "lb (mTLS links)"

    def unsupported(self, ctx: Ctx, scenario: Scenario) -> str | None:
        if scenario.tls and not LB_HAS_TLS_LISTENER:
            return "n/a (lb has no TLS listener yet)"
        return _no_certificate(ctx, scenario)

    def start(self, ctx: Ctx, scenario: Scenario) -> Running:
        d = ctx.fresh_dir(f"lb-{scenario.name}")
        nodes = ["a", "b"] if scenario.topology in ("forwarded", "pooled") else ["a"]
        ports = iter(free_ports(2 * len(nodes)))
        lines = [
            "[farm]",
            f'name = "{ctx.farm}"',
            f'secret = "{ctx.secret}"',
            'link_security = "mtls"' if self.mtls else 'link_security = "plaintext"',
            *(['link_certs = "certs"'] if self.mtls else []),
            'cookie_name = "lbhome"',
            "",
            "[log]",
            'level = "info"',
            'format = "console"',
            # like the other proxies here (nginx access_log off, HAProxy without a log)
            'access_log = "off"',
            "",
            "[[services]]",
            'name = "web"',
        ]
        if scenario.tls:
            # default extractors (TLS 1.2 ticket, session id); wrk's TLS 1.3 hellos carry
            # neither, so every connection is a new session placed on this 1-node farm
            lines.append('protocol = "tls-passthrough"')
        elif scenario.terminate:
            assert ctx.tls_files is not None
            cert, key = ctx.tls_files
            lines += [
                'protocol = "tls-terminate"',
                'extractors = [ { kind = "home-cookie" } ]',
                f'tls = {{ cert = "{cert}", key = "{key}" }}',
            ]
        else:
            lines += ['protocol = "http"', 'extractors = [ { kind = "home-cookie" } ]']
        listen: dict[str, int] = {}
        for n in nodes:
            listen[n] = next(ports)
            app = ctx.backend_ports["tls-a" if scenario.tls else n]
            lines += [
                "",
                "[[nodes]]",
                f'name = "{n}"',
                f"workers = {self.workers}  # processes per node (CPU summed over all)",
                f'forward = "{HOST}:{next(ports)}"',
                f'listen = {{ web = "{HOST}:{listen[n]}" }}',
                f'apps = {{ web = "{HOST}:{app}" }}',
            ]
        conf = d / "farm.toml"
        conf.write_text("\n".join(lines) + "\n")
        if self.mtls:
            from lb.certs import ensure_certs

            ensure_certs(d / "certs", ctx.farm, nodes)
        procs = [
            Proc(
                f"lb-{n}",
                [sys.executable, "-m", "lb", "run", "--config", str(conf), "--node", n],
                d / f"node-{n}.log",
                # two workers get both CPUs (sharing the second with the load side);
                # one worker stays on the proxy CPU like the other proxies
                ctx.proxy_cpus if self.workers == 1 else None,
                ctx.tools,
                cwd=compiled_copy(ctx) if self.compiled else ROOT,
            )
            for n in nodes
        ]
        home = _home(scenario)
        return Running(
            self.key,
            procs,
            listen["a"],
            ctx.cookie(home),
            f"node={home}",
            _pooled_homes(ctx, scenario),
        )


def compiled_copy(ctx: Ctx) -> Path:
    """A copy of this checkout's lb compiled with mypyc (`python -m lb` run from it imports
    it), built at the first call of a run: about a minute."""
    where = ctx.workdir / "compiled"
    if (where / "lb").is_dir():
        return where
    where.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, where / name)
    shutil.copytree(ROOT / "lb", where / "lb", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    log_path = where / "build.log"
    with log_path.open("wb") as out:
        done = subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--inplace"],
            cwd=where,
            env={**os.environ, "LB_COMPILE": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"compiling lb failed (mypy and a C compiler needed): {log_path}")
    return where


def haproxy_conf(
    listen: int,
    target: int | dict[str, int],
    mode: str,
    maxconn: int,
    server: str,
    persist: bool = True,
    crt: Path | None = None,
) -> str:
    """One HAProxy hop; `target` a port, or server name -> port (pooled: chosen by cookie).
    With `crt` (certificate and key in one PEM) it ends TLS from the client.

    In http mode HAProxy 2.6 parses every request of a keep-alive connection
    (its default http-keep-alive mode) and applies cookie persistence to each,
    reusing idle server connections (http-reuse safe, the default). Without
    `persist` (a hop with one server behind another HAProxy, which removed the cookie
    as `indirect` does) it has no cookie: with one, it would insert a Set-Cookie into
    every answer for the hop before it to remove again.
    """
    targets = target if isinstance(target, dict) else {server: target}
    if mode == "http" and not persist:
        cookie = "\n".join(f"    server {name} {HOST}:{port}" for name, port in targets.items())
    elif mode == "http":
        cookie = "    cookie SRV insert indirect nocache\n"
        cookie += "\n".join(
            f"    server {name} {HOST}:{port} cookie {name}" for name, port in targets.items()
        )
    else:
        cookie = f"    server {server} {HOST}:{target}"
    return f"""global
    nbthread 1
    maxconn {maxconn}

defaults
    mode {mode}
    maxconn {maxconn}
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-keep-alive 600s

frontend fe
    bind {HOST}:{listen}{f" ssl crt {crt} alpn http/1.1" if crt else ""}
    default_backend be

backend be
{cookie}
"""


class HaproxyProxy(ProxyKind):
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.key = f"haproxy-{mode}"
        self.label = f"HAProxy ({mode})"

    def unsupported(self, ctx: Ctx, scenario: Scenario) -> str | None:
        if scenario.topology == "pooled" and self.mode == "tcp":
            return "n/a (tcp mode picks a server per connection, not per request)"
        if scenario.tls and self.mode == "http":
            return "n/a (http mode cannot relay TLS untouched)"
        if scenario.tls and "tls-a" not in ctx.backend_ports:
            return "n/a (openssl missing: no TLS backend)"
        if scenario.terminate and self.mode == "tcp":
            return "n/a (tcp mode picks a server per connection, not per request)"
        return _no_certificate(ctx, scenario)

    def start(self, ctx: Ctx, scenario: Scenario) -> Running:
        d = ctx.fresh_dir(f"{self.key}-{scenario.name}")
        crt = None
        if scenario.terminate and ctx.tls_files is not None:
            crt = d / "cert-and-key.pem"
            crt.write_bytes(b"".join(f.read_bytes() for f in ctx.tls_files))
        home = _home(scenario)
        hops = self.hops(ctx, scenario)
        maxconn = max(1000, min(40_000, (ctx.nofile - 1000) // 2))
        procs = []
        for i, (listen, target) in enumerate(hops):
            conf = d / f"hop{i + 1}.cfg"
            persist = self.persists(i)
            first = crt if i == 0 else None
            conf.write_text(haproxy_conf(listen, target, self.mode, maxconn, home, persist, first))
            procs.append(
                Proc(
                    f"{self.key}-hop{i + 1}",
                    [ctx.tools["haproxy"], "-db", "-f", str(conf)],
                    d / f"hop{i + 1}.log",
                    ctx.proxy_cpus,
                    ctx.tools,
                )
            )
        return Running(
            self.key,
            procs,
            hops[0][0],
            ctx.cookie(home),
            f"node={home}",
            _pooled_homes(ctx, scenario),
        )

    def hops(self, ctx: Ctx, scenario: Scenario) -> list[tuple[int, int | dict[str, int]]]:
        """Each HAProxy process: its listen port and its target (a port, or server name
        -> port chosen by cookie); the client connects to the first."""
        home = _home(scenario)
        if scenario.topology == "pooled":
            return [(free_ports(1)[0], {h: ctx.backend_ports[h] for h in POOLED_HOMES})]
        count = 2 if scenario.topology == "forwarded" else 1
        ports = free_ports(count)
        last = _target_port(ctx, scenario, home)
        return [(ports[i], ports[i + 1] if i + 1 < count else last) for i in range(count)]

    def persists(self, hop: int) -> bool:
        """Whether hop `hop` (0: the client's) applies the SRV cookie: only the first. A
        later hop has one server and gets the requests with SRV removed (`indirect`); with
        the cookie it inserted a Set-Cookie into each answer, which the hop before removed
        again: work lb's home does not do (pooled, HAProxy as a farm, callgrind over 2,000
        requests: 54.3k instructions a request for the two processes with it, 50.3k
        without)."""
        return hop == 0


class HaproxyFarm(HaproxyProxy):
    """HAProxy (http) laid out as lb's farm, for ``pooled`` only: one HAProxy per node in
    front of its own application; the entry's routes each request by cookie to its own
    application or to the other node's HAProxy, which serves it through its application.
    lb's topology with HAProxy in lb's place (both processes on the proxies' CPU, as
    lb's two nodes are), so the ratio to it shows what lb's nodes cost apart from the
    second hop that ``pooled`` against one HAProxy (http) also counts."""

    def __init__(self) -> None:
        super().__init__("http")
        self.key = "haproxy-farm"
        self.label = "HAProxy (http) as a 2-node farm"

    def unsupported(self, ctx: Ctx, scenario: Scenario) -> str | None:
        if scenario.topology != "pooled":
            return "n/a (pooled only: elsewhere the same as HAProxy (http))"
        return super().unsupported(ctx, scenario)

    def hops(self, ctx: Ctx, scenario: Scenario) -> list[tuple[int, int | dict[str, int]]]:
        entry, other = POOLED_HOMES
        ports = free_ports(2)
        return [
            (ports[0], {entry: ctx.backend_ports[entry], other: ports[1]}),
            (ports[1], {other: ctx.backend_ports[other]}),
        ]


class NginxProxy(ProxyKind):
    key = "nginx"
    label = "nginx"

    def unsupported(self, ctx: Ctx, scenario: Scenario) -> str | None:
        if scenario.tls and stream_module() is None:
            return "n/a (nginx stream module not installed)"
        if scenario.tls and "tls-a" not in ctx.backend_ports:
            return "n/a (openssl missing: no TLS backend)"
        return _no_certificate(ctx, scenario)

    def start(self, ctx: Ctx, scenario: Scenario) -> Running:
        d = ctx.fresh_dir(f"nginx-{scenario.name}")
        home = _home(scenario)
        hops = 2 if scenario.topology == "forwarded" else 1
        ports = free_ports(hops)
        procs = []
        for i in range(hops):
            hd = d / f"hop{i + 1}"
            (hd / "tmp").mkdir(parents=True, exist_ok=True)
            target = ports[i + 1] if i + 1 < hops else _target_port(ctx, scenario, home)
            conf = hd / "nginx.conf"
            if scenario.topology == "pooled":
                conf.write_text(self.pooled_conf(ctx, hd, ports[i]))
            else:
                tls_files = ctx.tls_files if scenario.terminate and i == 0 else None
                conf.write_text(self.conf(ctx, hd, ports[i], target, scenario.tls, tls_files))
            procs.append(
                Proc(
                    f"nginx-hop{i + 1}",
                    [
                        ctx.tools["nginx"],
                        "-p",
                        str(hd),
                        "-e",
                        str(hd / "error.log"),
                        "-c",
                        str(conf),
                    ],
                    hd / "out.log",
                    ctx.proxy_cpus,
                    ctx.tools,
                )
            )
        return Running(
            self.key,
            procs,
            ports[0],
            ctx.cookie(home),
            f"node={home}",
            _pooled_homes(ctx, scenario),
        )

    @staticmethod
    def pooled_conf(ctx: Ctx, d: Path, listen: int) -> str:
        """One upstream per home, chosen per request by the SRV cookie (a map)."""
        ups = "\n".join(
            f"""    upstream up_{h} {{
        server {HOST}:{ctx.backend_ports[h]};
        keepalive 64;
        keepalive_requests 1000000000;
        keepalive_timeout 600s;
    }}"""
            for h in POOLED_HOMES
        )
        cases = "\n".join(f"        {h} up_{h};" for h in POOLED_HOMES)
        return f"""worker_processes 1;
worker_rlimit_nofile {ctx.nofile};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections {max(1024, min(100_000, ctx.nofile - 500))}; }}
http {{
    access_log off;
    keepalive_timeout 600s;
    keepalive_requests 1000000000;
{nginx_temp_paths(d)}
{ups}
    map $cookie_SRV $pool {{
        default up_{POOLED_HOMES[0]};
{cases}
    }}
    server {{
        listen {HOST}:{listen} backlog=4096;
        location / {{
            proxy_pass http://$pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""

    @staticmethod
    def conf(
        ctx: Ctx,
        d: Path,
        listen: int,
        target: int,
        stream: bool,
        tls_files: tuple[Path, Path] | None = None,
    ) -> str:
        """One nginx hop: a stream relay, or an http proxy (ending TLS with `tls_files`)."""
        head = f"""worker_processes 1;
worker_rlimit_nofile {ctx.nofile};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections {max(1024, min(100_000, ctx.nofile - 500))}; }}
"""
        if stream:
            return (
                f"load_module {stream_module()};\n"
                + head
                + f"""stream {{
    server {{
        listen {HOST}:{listen} backlog=4096;
        proxy_pass {HOST}:{target};
    }}
}}
"""
            )
        ssl = ""
        if tls_files is not None:
            ssl = f"""        ssl_certificate {tls_files[0]};
        ssl_certificate_key {tls_files[1]};
"""
        return (
            head
            + f"""http {{
    access_log off;
    keepalive_timeout 600s;
    keepalive_requests 1000000000;
{nginx_temp_paths(d)}
    upstream up {{
        server {HOST}:{target};
        keepalive 64;
        keepalive_requests 1000000000;
        keepalive_timeout 600s;
    }}
    server {{
        listen {HOST}:{listen}{" ssl" if tls_files else ""} backlog=4096;
{ssl}        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""
        )


KINDS: dict[str, ProxyKind] = {
    "lb": LbProxy(),
    "lb-w2": LbProxy(workers=2),
    "lb-mtls": LbProxy(mtls=True),
    "lb-compiled": LbProxy(compiled=True),
    "haproxy-http": HaproxyProxy("http"),
    "haproxy-tcp": HaproxyProxy("tcp"),
    "nginx": NginxProxy(),
    "haproxy-farm": HaproxyFarm(),
}


# ---------------------------------------------------------------------------- wrk

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_BIN_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"cannot read the time {text!r}")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    """The numbers of one wrk run (with --latency); raises ValueError if they are not there."""
    res: dict[str, Any] = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),\s+([\d.]+)([KMGT]?)B read", out)
    if not m:
        raise ValueError("no request count in the wrk output")
    res["requests"] = int(m.group(1))
    res["seconds"] = _ms(m.group(2) + m.group(3)) / 1e3
    res["bytes"] = float(m.group(4)) * _BIN_UNITS[m.group(5)]
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else res["requests"] / res["seconds"]
    res["mib_s"] = res["bytes"] / res["seconds"] / (1 << 20)
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+(?:us|ms|s|m|h))\s*$", out, re.MULTILINE)
        if m:
            res[f"p{pct}_ms"] = _ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errs = [int(x) for x in m.groups()] if m else [0, 0, 0, 0]
    res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), errs, strict=True))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    res["errors"] = sum(errs) + res["non2xx"]
    return res


POOLED_LUA = """-- pooled: each request carries the cookie of the next home in turn
homes = {HOMES}
cookies = {COOKIES}
n = 0
hits = 0
answered = 0
threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  n = n % #homes + 1
  return wrk.format("GET", "/p/" .. homes[n], { ["Cookie"] = cookies[n] })
end

function response(status, headers, body)
  -- the backend answers "node=X /p/Y": node X served a request meant for home Y
  local node, want = string.match(body or "", "node=(%w+) /p/(%w+)")
  if node then
    answered = answered + 1
    if node == want then
      hits = hits + 1
    end
  end
end

function done(summary, latency, requests)
  local h, a = 0, 0
  for _, t in ipairs(threads) do
    h = h + t:get("hits")
    a = a + t:get("answered")
  end
  io.write(string.format("POOLED hits %d answered %d\\n", h, a))
end
"""


def _lua_list(items: Sequence[str]) -> str:
    # JSON string literals are valid Lua string literals for these ASCII values
    return "{" + ", ".join(json.dumps(x) for x in items) + "}"


def pooled_script(homes: dict[str, str]) -> str:
    """The wrk Lua script of the pooled scenario for home -> cookie."""
    names = list(homes)
    return POOLED_LUA.replace("{HOMES}", _lua_list(names)).replace(
        "{COOKIES}", _lua_list([homes[h] for h in names])
    )


def parse_pooled(out: str) -> dict[str, Any]:
    """The pooled script's count: responses answered by the cookie's home, of those read."""
    m = re.search(r"^POOLED hits (\d+) answered (\d+)$", out, re.MULTILINE)
    if not m:
        raise ValueError("no POOLED line in the wrk output")
    hits, answered = int(m.group(1)), int(m.group(2))
    return {
        "home_hits": hits,
        "home_answered": answered,
        "home_share": hits / answered if answered else None,
    }


def run_wrk(
    ctx: Ctx, run: Running, scenario: Scenario, seconds: int, conns: int
) -> tuple[dict[str, Any], str]:
    scheme = "https" if scenario.https else "http"
    argv = [ctx.tools["wrk"], "-t", str(min(ctx.wrk_threads, conns)), "-c", str(conns)]
    argv += ["-d", f"{seconds}s", "--latency", "--timeout", "5s"]
    if run.homes:
        script = ctx.workdir / f"pooled-{run.key}.lua"
        script.write_text(pooled_script(run.homes))
        argv += ["-s", str(script)]
    elif not scenario.tls:
        argv += ["-H", f"Cookie: {run.cookie}"]
    if scenario.close:
        argv += ["-H", "Connection: close"]
    argv.append(f"{scheme}://{HOST}:{run.port}{scenario.path}")
    if ctx.load_cpus and "taskset" in ctx.tools:
        argv = [ctx.tools["taskset"], "-c", ctx.load_cpus, *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise BenchError(f"wrk failed ({res.returncode}):\n{out}")
    parsed = parse_wrk(out)
    if run.homes:
        parsed.update(parse_pooled(out))
    return parsed, out


def wait_quiet(limit: float) -> float:
    """Wait (at most `limit` s) until other programs use under BUSY_OTHER_PCT of a CPU.

    Called between runs, when the proxies, the backend and wrk are idle, so any
    busy CPU belongs to someone else. Returns the seconds waited.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        b0, w0 = system_busy_ticks(), time.monotonic()
        time.sleep(1.0)
        busy = 100.0 * (system_busy_ticks() - b0) / CLK_TCK / (time.monotonic() - w0)
        if busy < BUSY_OTHER_PCT:
            break
    return time.monotonic() - t0


def measure_settled(ctx: Ctx, run: Running, scenario: Scenario, conns: int) -> dict[str, Any]:
    """One measured run; with --settle, started once the machine is quiet (or S s passed)."""
    waited = wait_quiet(ctx.settings.settle) if ctx.settings.settle else 0.0
    res = measure_wrk(ctx, run, scenario, conns)
    res["settle_wait_s"] = round(waited, 1)
    return res


def measure_wrk(ctx: Ctx, run: Running, scenario: Scenario, conns: int) -> dict[str, Any]:
    pids = run.pids()
    backend = ctx.backend.pids() if ctx.backend else []
    opens0 = tcp_active_opens()
    cpu0, back0, wrk0, sys0 = (
        cpu_ticks(pids),
        cpu_ticks(backend),
        children_ticks(),
        system_busy_ticks(),
    )
    pcpu0 = per_cpu_ticks()
    user0 = cpu_ticks(pids, user_only=True)
    t0 = time.monotonic()
    res, out = run_wrk(ctx, run, scenario, ctx.settings.duration, conns)
    wall = time.monotonic() - t0
    cpu1, back1, wrk1, sys1 = (
        cpu_ticks(pids),
        cpu_ticks(backend),
        children_ticks(),
        system_busy_ticks(),
    )
    pcpu1 = per_cpu_ticks()
    user1 = cpu_ticks(pids, user_only=True)
    opens1 = tcp_active_opens()
    for p in run.procs:
        if not p.alive():
            raise BenchError(f"{p.name} exited during the run:\n{p.log_tail()}")
    cpu_s = (cpu1 - cpu0) / CLK_TCK
    res["proxy_cpu_s"] = cpu_s
    res["proxy_cpu_pct"] = 100.0 * cpu_s / res["seconds"] if res["seconds"] else 0.0
    res["cpu_us_per_req"] = cpu_s * 1e6 / res["requests"] if res["requests"] else None
    # the share of the proxy's CPU spent in user space (the rest is the kernel: syscalls)
    res["proxy_user_pct"] = 100.0 * (user1 - user0) / (cpu1 - cpu0) if cpu1 > cpu0 else None
    res["backend_cpu_pct"] = 100.0 * (back1 - back0) / CLK_TCK / wall
    res["wrk_cpu_pct"] = 100.0 * (wrk1 - wrk0) / CLK_TCK / wall
    if sys0 >= 0 and sys1 >= 0:
        ours = (cpu1 - cpu0) + (back1 - back0) + (wrk1 - wrk0)
        # CPU used by anything else on the machine (other programs, unattributed kernel work)
        res["other_cpu_pct"] = 100.0 * (sys1 - sys0 - ours) / CLK_TCK / wall
    # how busy each CPU was (a CPU near 100% is the bottleneck), and its irq/softirq share
    res["cpu_busy_pct"] = {
        name: round(100.0 * (b - pcpu0[name][0]) / max(1, t - pcpu0[name][2]), 1)
        for name, (b, _irq, t) in pcpu1.items()
        if name in pcpu0
    }
    res["cpu_irq_pct"] = {
        name: round(100.0 * (i - pcpu0[name][1]) / max(1, t - pcpu0[name][2]), 1)
        for name, (_b, i, t) in pcpu1.items()
        if name in pcpu0
    }
    res["new_connections"] = opens1 - opens0 if opens0 >= 0 and opens1 >= 0 else None
    res["wrk_output"] = out
    return res


# ---------------------------------------------------------------------------- idle


async def _open_idle(
    port: int, n: int, cookie: str, expect: str
) -> tuple[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], int]:
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nCookie: {cookie}\r\n\r\n".encode()
    sem = asyncio.Semaphore(200)
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    failures = 0

    async def one() -> None:
        nonlocal failures
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
            except (OSError, TimeoutError):
                failures += 1
                return
            try:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                body = await asyncio.wait_for(reader.readexactly(int(m.group(1)) if m else 0), 10)
                if not head.startswith(b"HTTP/1.1 200") or expect.encode() not in body:
                    raise ValueError(f"unexpected answer {head[:40]!r}")
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
                failures += 1
                writer.close()
                return
            conns.append((reader, writer))

    await asyncio.gather(*(one() for _ in range(n)))
    return conns, failures


async def _idle_measure(run: Running, n: int) -> dict[str, Any]:
    pids = run.pids()
    before = rss_kib(pids)
    t0 = time.monotonic()
    conns, failures = await _open_idle(run.port, n, run.cookie, run.expect)
    open_s = time.monotonic() - t0
    await asyncio.sleep(1.0)
    after = rss_kib(run.pids())
    opened = len(conns)
    for _reader, writer in conns:
        writer.close()
    await asyncio.sleep(0.5)
    growth = after - before
    return {
        "connections": opened,
        "errors": failures,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_kib_per_10k": growth * 10_000 / opened if opened else None,
        "bytes_per_conn": growth * 1024 / opened if opened else None,
        "open_seconds": open_s,
    }


# ---------------------------------------------------------------------------- scenarios


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def start_setups(
    ctx: Ctx, scenario: Scenario, proxies: Sequence[str]
) -> tuple[dict[str, Running], dict[str, str]]:
    running: dict[str, Running] = {}
    skipped: dict[str, str] = {}
    for key in proxies:
        why = KINDS[key].unsupported(ctx, scenario)
        if why:
            skipped[key] = why
            continue
        running[key] = KINDS[key].start(ctx, scenario)
    try:
        for run in running.values():
            if run.homes:
                # every home answers through the entry (lb: the link to b is up)
                for h, cookie in run.homes.items():
                    wait_http(run.procs, run.port, f"node={h}", cookie, False, f"/p/{h}")
                continue
            wait_http(run.procs, run.port, run.expect, run.cookie, scenario.https, scenario.path)
    except BaseException:
        for run in running.values():
            run.stop()
        raise
    return running, skipped


def idle_count(ctx: Ctx) -> int:
    """Idle connections to open: as asked, or as many as the file limit allows (a proxy
    that splices holds two descriptors per client), rounded down to a thousand."""
    fit = (ctx.nofile - 1500) // 2
    if fit < ctx.settings.idle_conns:
        return max(100, fit // 1000 * 1000 if fit >= 1000 else fit)
    return ctx.settings.idle_conns


def run_scenario(
    ctx: Ctx, scenario: Scenario, proxies: Sequence[str], profile_dir: Path | None
) -> list[dict[str, Any]]:
    s = ctx.settings
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in proxies}
    skipped: dict[str, str] = {}
    conns = s.bulk_conns if scenario.bulk else s.conns
    if scenario.kind == "idle":
        n = idle_count(ctx)
        for _rep in range(s.repeat):
            running, skipped = start_setups(ctx, scenario, proxies)
            try:
                for run in running.values():
                    if s.warmup:
                        run_wrk(ctx, run, scenario, s.warmup, s.conns)
                    time.sleep(0.5)
                    if s.settle:
                        wait_quiet(s.settle)
                    runs[run.key].append(asyncio.run(_idle_measure(run, n)))
            finally:
                for run in running.values():
                    run.stop()
    else:
        running, skipped = start_setups(ctx, scenario, proxies)
        try:
            for run in running.values():
                if s.warmup:
                    run_wrk(ctx, run, scenario, s.warmup, conns)
            for _rep in range(s.repeat):
                for run in running.values():
                    runs[run.key].append(measure_settled(ctx, run, scenario, conns))
            if profile_dir is not None and "lb" in running:
                profile_lb(ctx, running["lb"], scenario, conns, profile_dir)
        finally:
            for run in running.values():
                run.stop()
    return [summarize(ctx, scenario, key, runs[key], skipped.get(key), conns) for key in proxies]


BUSY_OTHER_PCT = 15.0  # other programs using more than this share of a CPU flag a run
PROXY_BOUND_PCT = 85.0  # a proxy using this share of its CPU is the bottleneck


def summarize(
    ctx: Ctx,
    scenario: Scenario,
    key: str,
    rr: list[dict[str, Any]],
    skipped: str | None,
    conns: int,
) -> dict[str, Any]:
    """One table row: the medians of the runs of one proxy in one scenario, and its flags."""
    row: dict[str, Any] = {
        "scenario": scenario.name,
        "title": scenario.title,
        "proxy": key,
        "label": KINDS[key].label,
    }
    if skipped:
        row.update(status="n/a", note=skipped, runs=[])
        return row
    errors = sum(int(r.get("errors", 0)) for r in rr)
    row["runs"] = [{k: v for k, v in r.items() if k != "wrk_output"} for r in rr]
    row["errors"] = errors
    flags: list[str] = []  # make the row "flagged"
    notes: list[str] = []  # worth saying, but the numbers stand
    if errors:
        flags.append(f"{errors} errors in {len(rr)} runs")
    if scenario.kind == "idle":
        for metric in ("connections", "rss_kib_per_10k", "bytes_per_conn"):
            row[metric] = _median([r.get(metric) for r in rr])
    else:
        # runs that other programs disturbed are left out of the medians when clean ones exist
        clean = [r for r in rr if (r.get("other_cpu_pct") or 0.0) <= BUSY_OTHER_PCT]
        used = clean or rr
        row["runs_used"] = len(used)
        if clean and len(clean) < len(rr):
            notes.append(f"{len(rr) - len(clean)} of {len(rr)} runs disturbed, left out")
        if not clean:
            busiest = min((r.get("other_cpu_pct") or 0.0) for r in rr)
            flags.append(f"machine busy: other programs used {busiest:.0f}%+ of a CPU in every run")
        metrics: tuple[str, ...] = ("rps", "mib_s", "p50_ms", "p99_ms", "cpu_us_per_req")
        metrics += ("proxy_cpu_pct", "proxy_user_pct", "backend_cpu_pct", "wrk_cpu_pct")
        metrics += ("other_cpu_pct", "new_connections", "home_share")
        for metric in metrics:
            row[metric] = _median([r.get(metric) for r in used])
        rps = [r["rps"] for r in used]
        row["rps_spread_pct"] = 100.0 * (max(rps) - min(rps)) / statistics.median(rps)
        row["requests"] = sum(int(r["requests"]) for r in rr)
        if row.get("home_share") is not None and row["home_share"] < 1.0:
            # the throughput stands; this many answers came from another node than the home
            notes.append(f"{100.0 * row['home_share']:.1f}% answered by the cookie's home")
        hops = 2 if scenario.topology == "forwarded" else 1
        if scenario.topology == "pooled":
            hops = 2  # a proxy holds connections to both homes (lb: entry a and node b)
        if not scenario.close and ctx.netns and row["new_connections"] is not None:
            # keep-alive: about one connection per client connection and hop
            # (a proxy may open a few more towards its server; far more means reconnects)
            row["reused"] = max(r["new_connections"] for r in rr) <= 2 * conns * (hops + 1) + 5
            if not row["reused"]:
                flags.append("connections were not all reused")
        if ctx.proxy_cpus and ctx.load_cpus:
            load = [f"cpu{c}" for c in ctx.load_cpus.split(",")]
            row["load_cpu_busy_pct"] = _median(
                [statistics.mean(r["cpu_busy_pct"].get(c, 0.0) for c in load) for r in used]
            )
            # which side saturated: the proxy's CPU, the CPU of wrk and the backend, or neither
            if row["proxy_cpu_pct"] >= PROXY_BOUND_PCT:
                row["bound"] = "proxy"
            elif (row["load_cpu_busy_pct"] or 0.0) >= PROXY_BOUND_PCT:
                row["bound"] = "load"
            else:
                row["bound"] = "neither"
    row["status"] = "flagged" if flags else "ok"
    row["note"] = "; ".join(flags + notes)
    return row


def profile_lb(ctx: Ctx, run: Running, scenario: Scenario, conns: int, profile_dir: Path) -> None:
    """An extra, unmeasured run of lb with py-spy attached to every lb node process."""
    pyspy = Path(sys.executable).with_name("py-spy")
    if not pyspy.exists():
        print(f"py-spy not found next to {sys.executable}: no profile", file=sys.stderr)
        return
    profile_dir.mkdir(parents=True, exist_ok=True)
    seconds = max(ctx.settings.duration, 5)
    spies = []
    for p in run.procs:
        # collapsed stacks ("raw"), idle samples included (profile_summary.py separates them)
        out = profile_dir / f"{scenario.name}-{p.name}.txt"
        argv = [str(pyspy), "record", "--native", "--idle", "-r", "100", "-d", str(seconds)]
        argv += ["-f", "raw", "-o", str(out), "--pid", str(p.pid)]
        # the sampler runs beside wrk, off the proxies' CPU: there it would preempt lb and
        # catch it at its preemption points (inside syscalls) instead of anywhere
        if ctx.load_cpus and "taskset" in ctx.tools:
            argv = [ctx.tools["taskset"], "-c", ctx.load_cpus, *argv]
        with (profile_dir / f"{scenario.name}-{p.name}.log").open("wb") as log:
            spies.append(subprocess.Popen(argv, stdout=log, stderr=log))
    time.sleep(0.5)
    run_wrk(ctx, run, scenario, seconds, conns)
    for spy in spies:
        spy.wait(timeout=seconds + 30)


# ---------------------------------------------------------------------------- report


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["scenario"], {})[r["proxy"]] = r
    out = []
    for scen, table in by.items():
        out += _ratios_of(scen, table, "lb")
        if "lb-compiled" in table:
            # the same rows for the compiled build: scenario "local (compiled)", ...
            out += _ratios_of(scen, table, "lb-compiled")
    return out


def _ratios_of(scen: str, table: dict[str, dict[str, Any]], subject: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    lb = table.get(subject)
    label = scen if subject == "lb" else f"{scen} (compiled)"
    if lb is None or lb.get("status") == "n/a":
        out.append({"scenario": label, "note": lb["note"] if lb else f"{subject} not run"})
        return out
    if scen == "idle":
        metrics = ["rss_kib_per_10k"]
    elif SCENARIO_DEFS[scen].bulk:
        metrics = ["mib_s", "cpu_us_per_req", "p99_ms"]
    else:
        metrics = ["rps", "cpu_us_per_req", "p99_ms"]
    for metric in metrics:
        entry: dict[str, Any] = {"scenario": label, "metric": metric}
        for peer in PEERS:
            other = table.get(peer)
            a = lb.get(metric)
            b = other.get(metric) if other else None
            entry[f"lb/{peer}"] = a / b if a is not None and b else None
            entry[f"pairs/{peer}"] = pair_ratios(lb, other, metric) if other else []
            entry[f"clean/{peer}"] = bool(
                other and lb.get("status") == "ok" and other.get("status") == "ok"
            )
            if metric in ("rps", "mib_s") and other:
                # a throughput ratio compares capacity only when both proxies saturated
                both = lb.get("bound") == "proxy" and other.get("bound") == "proxy"
                entry[f"load_bound/{peer}"] = not both
        for tm, op, factor in TARGETS.get(scen, []):
            if tm == metric:
                ratio = entry["lb/haproxy-http"]
                entry["target"] = f"{op} {factor:g}x HAProxy (http)"
                if ratio is not None:
                    entry["met"] = ratio >= factor if op == ">=" else ratio <= factor
        out.append(entry)
    return out


def pair_ratios(lb: dict[str, Any], other: dict[str, Any], metric: str) -> list[float]:
    """lb's repeat i against the peer's repeat i, for every i both measured: the two ran
    one after the other, seconds apart, so a machine whose speed drifts across a run
    (as shared ones do) moves both sides of a pair alike. Runs that other programs
    disturbed are left out, as they are of the medians."""
    out: list[float] = []
    for mine, theirs in zip(lb.get("runs", []), other.get("runs", []), strict=False):
        a, b = mine.get(metric), theirs.get(metric)
        if any((r.get("other_cpu_pct") or 0.0) > BUSY_OTHER_PCT for r in (mine, theirs)):
            continue
        if a is not None and b:
            out.append(a / b)
    return out


def _pairs_cell(e: dict[str, Any], peer: str) -> str:
    """The median of the side-by-side pairs and their range, or '-'."""
    pairs = e.get(f"pairs/{peer}") or []
    if not pairs:
        return "-"
    if len(pairs) == 1:
        return f"{pairs[0]:.2f}x"
    return f"{statistics.median(pairs):.2f}x ({min(pairs):.2f}-{max(pairs):.2f})"


def markdown(rows: list[dict[str, Any]], rats: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | proxy | req/s | MiB/s | p50 ms | p99 ms | CPU µs/req | proxy CPU % "
        "| bound | new conns/run | home % | status |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    idle = []
    for r in rows:
        if r["scenario"] == "idle":
            idle.append(r)
            continue
        if r["status"] == "n/a":
            lines.append(f"| {r['scenario']} | {r['label']} | {r['note']} | | | | | | | | | n/a |")
            continue
        status = r["status"] if not r.get("note") else f"{r['status']}: {r['note']}"
        share = r.get("home_share")
        lines.append(
            f"| {r['scenario']} | {r['label']} | {_fmt(r['rps'], 0)} | {_fmt(r['mib_s'])} "
            f"| {_fmt(r['p50_ms'], 2)} | {_fmt(r['p99_ms'], 2)} | {_fmt(r['cpu_us_per_req'])} "
            f"| {_fmt(r['proxy_cpu_pct'], 0)} | {r.get('bound', '-')} "
            f"| {_fmt(r['new_connections'], 0)} | {_fmt(None if share is None else 100 * share)} "
            f"| {status} |"
        )
    if idle:
        lines += [
            "",
            "| scenario | proxy | idle connections | RSS growth KiB per 10k | bytes per connection "
            "| status |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for r in idle:
            status = r["status"] if not r.get("note") else f"{r['status']}: {r['note']}"
            lines.append(
                f"| idle | {r['label']} | {_fmt(r.get('connections'), 0)} "
                f"| {_fmt(r.get('rss_kib_per_10k'), 0)} | {_fmt(r.get('bytes_per_conn'), 0)} "
                f"| {status} |"
            )
    if rats:
        lines += [
            "",
            "| scenario | metric | lb / HAProxy (http) | pairs with HAProxy (http) "
            "| lb / HAProxy (tcp) | lb / nginx | lb / HAProxy farm | target | met |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for e in rats:
            if "metric" not in e:
                lines.append(f"| {e['scenario']} | {e['note']} | | | | | | | |")
                continue

            def cell(peer: str, e: dict[str, Any] = e) -> str:
                v = e.get(f"lb/{peer}")
                if v is None:
                    return "-"
                text = f"{v:.2f}x"
                if e.get(f"load_bound/{peer}"):
                    text += " †"
                return text + ("" if e.get(f"clean/{peer}") else " (flagged)")

            met = e.get("met")
            met_s = "-" if met is None else ("yes" if met else "no")
            if met is not None and not e.get("clean/haproxy-http"):
                met_s += " (flagged run)"
            lines.append(
                f"| {e['scenario']} | {e['metric']} | {cell('haproxy-http')} "
                f"| {_pairs_cell(e, 'haproxy-http')} | {cell('haproxy-tcp')} | {cell('nginx')} "
                f"| {cell('haproxy-farm')} | {e.get('target', '')} | {met_s} |"
            )
        lines += [
            "",
            "† at least one of the two proxies did not saturate its CPU (bound is not "
            '"proxy"): the ratio compares throughput at this load, not capacity; compare '
            "CPU µs/req. (flagged): a row of the ratio was flagged above. Pairs: lb's "
            "repeat i over HAProxy's repeat i (run seconds apart), their median and range; "
            "steadier than the ratio of medians when the machine's speed drifts.",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark lb side by side with HAProxy and nginx on this machine.",
    )
    p.add_argument("--quick", action="store_true", help="smoke mode: seconds, 1 repeat")
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of: {', '.join(SCENARIOS)}",
    )
    p.add_argument("--proxies", default=",".join(PROXIES), help=f"subset of: {', '.join(PROXIES)}")
    p.add_argument("--repeat", type=int, help="runs per scenario and proxy (default 3)")
    p.add_argument("--duration", type=int, help="seconds per run (default 10)")
    p.add_argument("--warmup", type=int, help="seconds of warm-up load per proxy (default 2)")
    p.add_argument("--idle-conns", type=int, help="idle connections (default 10000)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    p.add_argument("--profile", type=Path, metavar="DIR", help="py-spy lb in one extra run")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument(
        "--settle",
        type=int,
        default=0,
        metavar="S",
        help="on a shared machine: wait up to S seconds for other programs to go quiet "
        "before each run (disturbed runs are left out of the medians when clean ones exist)",
    )
    p.add_argument("--no-install", action="store_true", help="never run apt-get")
    p.add_argument(
        "--no-netns",
        action="store_true",
        help="stay in this network namespace (default: a private one)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    return p.parse_args(argv)


def _list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = _list(args.scenarios, SCENARIOS, "scenario")
    proxies = _list(args.proxies, PROXIES + EXTRA_PROXIES, "proxy")
    if args.quick:
        base = Settings(duration=1, warmup=0, repeat=1, idle_conns=500, quick=True)
    else:
        base = Settings()
    settings = Settings(
        duration=args.duration or base.duration,
        warmup=base.warmup if args.warmup is None else args.warmup,
        repeat=args.repeat or base.repeat,
        conns=base.conns,
        bulk_conns=base.bulk_conns,
        idle_conns=args.idle_conns or base.idle_conns,
        quick=base.quick,
        pin=not args.no_pin,
        settle=args.settle,
    )
    try:
        tools = ensure_tools(install=not args.no_install, tls="tls-passthrough" in scenarios)
    except ToolsMissing as exc:
        print(f"bench/run.py: {exc}", file=sys.stderr)
        return EXIT_NO_TOOLS
    machine = machine_info(tools)  # before the runs: the lb commit under test
    nofile = raise_nofile()
    netns_error = "not asked" if args.no_netns else enter_private_netns()
    if netns_error:
        print(
            f"note: no private network namespace ({netns_error}); connection counts "
            "include other programs' connections and are not checked",
            file=sys.stderr,
        )
    proxy_cpus, load_cpus, wrk_threads = pinning(settings)
    if load_cpus:
        # this script (and the idle client it runs) stays off the proxies' CPU
        os.sched_setaffinity(0, {int(c) for c in load_cpus.split(",")})
    workdir = Path(tempfile.mkdtemp(prefix="lb-bench-"))
    workdir.chmod(0o755)
    ctx = Ctx(settings, tools, workdir, proxy_cpus, load_cpus, wrk_threads, nofile)
    ctx.netns = netns_error is None
    command = "bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        backend = ctx.backend = start_backend(ctx)
        for name in scenarios:
            scenario = SCENARIO_DEFS[name]
            print(f"== {name}: {scenario.title}", file=sys.stderr, flush=True)
            rows.extend(run_scenario(ctx, scenario, proxies, args.profile))
            if not backend.alive():
                raise BenchError(f"the backend exited:\n{backend.log_tail()}")
    except BenchError as exc:
        print(f"bench/run.py: {exc}", file=sys.stderr)
        return 1
    finally:
        Proc.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory kept: {workdir}", file=sys.stderr)
    rats = ratios(rows)
    table = markdown(rows, rats)
    result = {
        "command": command,
        "machine": machine,
        "settings": settings.__dict__,
        "pinning": {
            "proxies": proxy_cpus,
            "wrk_backend_and_clients": load_cpus,
            "wrk_threads": wrk_threads,
        },
        "private_netns": ctx.netns,
        "nofile": nofile,
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "rows": rows,
        "ratios": rats,
        "table_markdown": table,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(table)
    print(f"\nJSON: {args.json}  ({result['elapsed_seconds']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""An operator's soak trial of a 3-node farm on loopback (not a CI test).

It starts, as an operator would, one `lb run` process per node (`workers = 2`)
with three services (`web` http, `tls` tls-terminate, `echo` tcp), real
applications behind them (bench/soak/app.py on aiohttp for web and echo, nginx
for tls), drives them with bench/soak/load.py for `--minutes`, and meanwhile
carries out an operator action every 2-3 minutes (SIGHUP with and without a real
change, `lb ctl` drain/undrain, a rolling restart, kill -9 of a worker and of a
node). Every 30 s it records, per node process: RSS, open descriptors, CPU
time, the node's /metrics gauges and each worker's SIGUSR1 tables record.
After the load stops it waits past idle_timeout and samples again.

Everything lands in the work directory (default /tmp/soak): farm.toml,
node-*.log, samples.jsonl, actions.jsonl, events.jsonl (the load's client
outcomes); bench/soak/report.py turns them into tables.

    .venv/bin/python bench/soak/run.py --minutes 23        # from the repository's top
    .venv/bin/python bench/soak/report.py /tmp/soak

Ports 21001-21323 on 127.0.0.1 (see PORTS below).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python")
NODES = ("a", "b", "c")
HOST = "127.0.0.1"
IDLE_TIMEOUT = 60.0


def ports(i: int) -> dict[str, int]:
    """Node i (1-based): its client, link, admin and application ports."""
    return {
        "web": 21000 + i,
        "tls": 21010 + i,
        "echo": 21020 + i,
        "forward": 21100 + i,
        "admin": 21200 + i,
        "app_web": 21300 + i,
        "app_tls": 21310 + i,
        "app_echo": 21320 + i,
    }


PORTS = {n: ports(i) for i, n in enumerate(NODES, start=1)}

GAUGES = (
    "lb_client_connections",
    "lb_tls_handshakes",
    "lb_tls_handshakes_waiting",
    "lb_local_splices",
    "lb_home_flows",
    "lb_pending_flows",
    "lb_forward_flows",
    "lb_directory_entries",
    "lb_node_load",
    "lb_draining",
)


def farm_toml(secret: str, previous: list[str] | None = None, extra_limits: str = "") -> str:
    lines = [
        "# Written by bench/soak/run.py: the soak's 3-node farm on loopback.",
        "[farm]",
        'name = "soak"',
        f'secret = "{secret}"',
        *([f"previous_secrets = {json.dumps(previous)}"] if previous else []),
        'link_security = "mtls"',
        'link_certs = "certs"',
        "",
        "[limits]",
        f"idle_timeout = {IDLE_TIMEOUT}",
        "drain_timeout = 20.0",
        *([extra_limits] if extra_limits else []),
        "",
        "[log]",
        'level = "info"',
        'format = "json"',
        "",
        "[[services]]",
        'name = "web"',
        'protocol = "http"',
        'extractors = [ { kind = "home-cookie" }, { kind = "cookie", name = "demo_sid" },'
        ' { kind = "uri-path", prefix = "/cart/", segments = 2 } ]',
        "",
        "[[services]]",
        'name = "tls"',
        'protocol = "tls-terminate"',
        'tls = { cert = "server.pem", key = "server.key" }',
        'extractors = [ { kind = "home-cookie" } ]',
        "",
        "[[services]]",
        'name = "echo"',
        'protocol = "tcp"',
        'extractors = [ { kind = "client-ip" } ]',
    ]
    for n in NODES:
        p = PORTS[n]
        lines += [
            "",
            "[[nodes]]",
            f'name = "{n}"',
            f'forward = "{HOST}:{p["forward"]}"',
            f'admin = "{HOST}:{p["admin"]}"',
            "workers = 2",
            f'listen = {{ web = "{HOST}:{p["web"]}", tls = "{HOST}:{p["tls"]}",'
            f' echo = "{HOST}:{p["echo"]}" }}',
            f'apps = {{ web = "{HOST}:{p["app_web"]}", tls = "{HOST}:{p["app_tls"]}",'
            f' echo = "{HOST}:{p["app_echo"]}" }}',
        ]
    return "\n".join(lines) + "\n"


def nginx_conf(work: Path) -> str:
    servers = []
    for n in NODES:
        servers.append(
            f"""
    server {{
        listen {HOST}:{PORTS[n]["app_tls"]};
        root {work}/www;
        add_header X-Node {n} always;
        location = /api {{ default_type application/json; return 200 '{{"node":"{n}"}}'; }}
    }}"""
        )
    return f"""worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000;
    client_body_temp_path {work}/nginx-tmp;
    proxy_temp_path {work}/nginx-tmp;
    fastcgi_temp_path {work}/nginx-tmp;
    uwsgi_temp_path {work}/nginx-tmp;
    scgi_temp_path {work}/nginx-tmp;
{"".join(servers)}
}}
"""


class Soak:
    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        self.secret = secrets.token_urlsafe(48)
        self.config = work / "farm.toml"
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.apps: dict[str, subprocess.Popen[bytes]] = {}
        self.nginx: subprocess.Popen[bytes] | None = None
        self.load: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.actions = (work / "actions.jsonl").open("a")
        self.samples = (work / "samples.jsonl").open("a")
        self.stop_sampling = threading.Event()
        self.probe = False  # bench/soak/probe on the nodes' PYTHONPATH: SIGUSR2 at each sample
        self.trace = False  # and tracemalloc in the nodes (slower)

    # ------------------------------------------------------------------ setup

    def lb(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PY, "-m", "lb", *args], cwd=self.work, capture_output=True, text=True, check=check
        )

    def prepare(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "nginx-tmp").mkdir(exist_ok=True)
        www = self.work / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text("<html><body>soak</body></html>\n")
        for i in range(1, 6):
            (www / f"asset{i}.css").write_bytes(b"/* asset */\n" + b"x" * (2000 * i))
        (www / "big.bin").write_bytes(b"y" * 2_000_000)
        self.lb("certs", str(self.work / "certs"), "--farm", "soak", "--nodes", ",".join(NODES))
        self.server_cert()
        self.config.write_text(farm_toml(self.secret))
        out = self.lb("check-config", str(self.config))
        print(out.stdout, out.stderr, end="")
        (self.work / "nginx.conf").write_text(nginx_conf(self.work))

    def server_cert(self) -> None:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                "-keyout", str(self.work / "server.key"), "-out", str(self.work / "server.pem"),
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def start_apps(self) -> None:
        for n in NODES:
            p = PORTS[n]
            log = (self.work / f"app-{n}.log").open("ab")
            self.apps[n] = subprocess.Popen(
                [PY, str(ROOT / "bench/soak/app.py"), "--node", n,
                 "--http", str(p["app_web"]), "--tcp", str(p["app_echo"])],
                stdout=subprocess.PIPE, stderr=log, start_new_session=True,
            )  # fmt: skip
        for proc in self.apps.values():
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready"
        log = (self.work / "nginx.log").open("ab")
        self.nginx = subprocess.Popen(
            ["nginx", "-c", str(self.work / "nginx.conf"), "-p", str(self.work)],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip

    def start_node(self, n: str) -> None:
        env = None
        if self.probe:
            env = {**os.environ, "PYTHONPATH": str(ROOT / "bench/soak/probe"),
                   "LB_SOAK_PROBE_DIR": str(self.work)}  # fmt: skip
            if self.trace:
                env["PYTHONTRACEMALLOC"] = "1"
        with (self.work / f"node-{n}.log").open("ab") as log:
            self.nodes[n] = subprocess.Popen(
                [PY, "-m", "lb", "run", "--config", str(self.config), "--node", n],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                env=env,
            )  # fmt: skip
        self.action("node_started", node=n, pid=self.nodes[n].pid)

    def wait_ready(self, nodes: tuple[str, ...] = NODES, timeout: float = 30.0) -> bool:
        """Every given node's admin answers and sees every member alive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = True
            for n in nodes:
                try:
                    with urllib.request.urlopen(
                        f"http://{HOST}:{PORTS[n]['admin']}/api/members", timeout=1
                    ) as r:
                        members = json.load(r)
                    states = members.get("members", members)
                    if any(
                        (v.get("state") if isinstance(v, dict) else v) != "alive"
                        for k, v in states.items()
                        if k != n
                    ):
                        ok = False
                except Exception:
                    ok = False
            if ok:
                return True
            time.sleep(0.5)
        return False

    # ------------------------------------------------------------------ records

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def action(self, what: str, **kw: Any) -> None:
        rec = {"t": self.now(), "wall": time.time(), "action": what, **kw}
        with self.lock:
            self.actions.write(json.dumps(rec) + "\n")
            self.actions.flush()
        print(f"[{rec['t']:8.1f}] {what} {kw}", flush=True)

    # ------------------------------------------------------------------ sampling

    @staticmethod
    def children(pid: int) -> list[int]:
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(x) for x in text.split()]

    @staticmethod
    def proc_stat(pid: int) -> dict[str, Any] | None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        worker = None
        if b"--worker" in cmd:
            worker = int(cmd[cmd.index(b"--worker") + 1])
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(stat[11]) + int(stat[12])) / ticks
        return {"pid": pid, "rss_mib": round(rss, 2), "fds": fds, "threads": threads,
                "cpu_s": cpu, "worker": worker}  # fmt: skip

    def metrics(self, n: str) -> dict[str, float]:
        out: dict[str, float] = {}
        try:
            with urllib.request.urlopen(
                f"http://{HOST}:{PORTS[n]['admin']}/metrics", timeout=2
            ) as r:
                text = r.read().decode()
        except Exception as e:
            return {"error": str(e)}  # type: ignore[dict-item]
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in GAUGES:
                out[name] = float(line.rsplit(" ", 1)[1])
            elif name == "lb_events_total":
                ev = re.search(r'event="([^"]+)"', line)
                if ev:
                    out[f"ev:{ev.group(1)}"] = float(line.rsplit(" ", 1)[1])
        return out

    def tables(self, n: str) -> list[dict[str, Any]]:
        """Send SIGUSR1 to the node and read each worker's tables record from its log."""
        proc = self.nodes.get(n)
        if proc is None or proc.poll() is not None:
            return []
        log = self.work / f"node-{n}.log"
        size = log.stat().st_size
        try:
            os.kill(proc.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return []
        time.sleep(0.7)
        with log.open("rb") as f:
            f.seek(size)
            new = f.read()
        out = []
        for line in new.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == "tables":
                pooled = rec.get("pooled")
                out.append({
                    "worker": rec.get("worker"),
                    "pending": rec.get("pending"),
                    "forward": rec.get("forward"),
                    "local": rec.get("local"),
                    "clients": rec.get("clients"),
                    "tls_handshakes": rec.get("tls_handshakes"),
                    "directory": rec.get("directory"),
                    "pooled": pooled,
                    "live": rec.get("live"),
                    "held": rec.get("held"),
                })  # fmt: skip
        return out

    def sample(self, phase: str) -> None:
        rec: dict[str, Any] = {"t": self.now(), "wall": time.time(), "phase": phase, "nodes": {}}
        for n in NODES:
            proc = self.nodes.get(n)
            entry: dict[str, Any] = {"procs": []}
            if proc is not None and proc.poll() is None:
                sup = self.proc_stat(proc.pid)
                if sup:
                    sup["role"] = "supervisor"
                    entry["procs"].append(sup)
                for kid in self.children(proc.pid):
                    st = self.proc_stat(kid)
                    if st:
                        st["role"] = f"worker{st['worker']}"
                        entry["procs"].append(st)
                if self.probe:
                    for p in entry["procs"]:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(p["pid"], signal.SIGUSR2)
                entry["metrics"] = self.metrics(n)
                entry["tables"] = self.tables(n)
            rec["nodes"][n] = entry
        others: dict[str, Any] = {}
        for name, p in [*(("app-" + k, v) for k, v in self.apps.items()),
                        ("nginx", self.nginx), ("load", self.load)]:  # fmt: skip
            if p is not None and p.poll() is None:
                st = self.proc_stat(p.pid)
                if st:
                    kids = [self.proc_stat(k) for k in self.children(p.pid)]
                    st["cpu_s"] += sum(k["cpu_s"] for k in kids if k)
                    others[name] = st
        rec["others"] = others
        with self.lock:
            self.samples.write(json.dumps(rec) + "\n")
            self.samples.flush()
        brief = " ".join(
            f"{n}:" + "/".join(f"{p['rss_mib']:.0f}M,{p['fds']}fd" for p in e["procs"])
            for n, e in rec["nodes"].items()
        )
        print(f"[{rec['t']:8.1f}] sample {phase} {brief}", flush=True)

    def sampler(self, period: float = 30.0) -> None:
        while not self.stop_sampling.wait(period):
            try:
                self.sample("run")
            except Exception as e:  # keep sampling whatever one sample met
                print("sample failed:", repr(e), flush=True)

    # ------------------------------------------------------------------ operator actions

    def sighup(self, nodes: tuple[str, ...], why: str) -> None:
        for n in nodes:
            os.kill(self.nodes[n].pid, signal.SIGHUP)
        self.action("sighup", nodes=list(nodes), why=why)

    def ctl(self, n: str, verb: str) -> None:
        out = self.lb("ctl", "--admin", f"{HOST}:{PORTS[n]['admin']}", verb, check=False)
        self.action(f"ctl_{verb}", node=n, rc=out.returncode, out=(out.stdout + out.stderr)[-300:])

    def rolling_restart(self, n: str) -> None:
        proc = self.nodes[n]
        self.action("sigterm", node=n, pid=proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            code = None
        self.action("exited", node=n, code=code)
        if code is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.start_node(n)
        ready = self.wait_ready()
        self.action("ready", node=n, ok=ready)

    def kill_worker(self, n: str, index: int) -> None:
        for kid in self.children(self.nodes[n].pid):
            st = self.proc_stat(kid)
            if st and st["worker"] == index:
                os.kill(kid, signal.SIGKILL)
                self.action("kill9_worker", node=n, worker=index, pid=kid)
                return
        self.action("kill9_worker_not_found", node=n, worker=index)

    def kill_node(self, n: str, down: float = 8.0) -> None:
        proc = self.nodes[n]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.action("kill9_node", node=n, pid=proc.pid)
        time.sleep(down)
        self.start_node(n)
        ready = self.wait_ready()
        self.action("ready", node=n, ok=ready)

    # ------------------------------------------------------------------ load

    def start_load(self, seconds: float) -> None:
        log = (self.work / "load.log").open("ab")
        self.load = subprocess.Popen(
            [PY, str(ROOT / "bench/soak/load.py"), "--work", str(self.work),
             "--seconds", str(seconds)],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        self.action("load_started", pid=self.load.pid, seconds=seconds)

    def close(self) -> None:
        for p in self.nodes.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for n, p in self.nodes.items():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
            self.action("node_closed", node=n, code=p.returncode)
        for p in [*self.apps.values(), self.nginx, self.load]:
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


def at(soak: Soak, t: float) -> None:
    """Sleep until `t` seconds after the load started."""
    left = t - (time.monotonic() - soak.load_t0)
    if left > 0:
        time.sleep(left)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/soak"))
    ap.add_argument("--minutes", type=float, default=23.0)
    ap.add_argument("--fresh", action="store_true", help="remove the work directory first")
    ap.add_argument(
        "--settle",
        type=float,
        default=IDLE_TIMEOUT + 30,
        help="seconds to wait after the load before the end sample",
    )
    ap.add_argument(
        "--probe",
        action="store_true",
        help="load bench/soak/probe in the nodes: asyncio tasks and gc object counts "
        "per process in WORK/probe-PID.jsonl at each sample",
    )
    ap.add_argument(
        "--trace",
        action="store_true",
        help="with --probe: tracemalloc in the nodes, and where their memory grew",
    )
    ap.add_argument("--no-actions", action="store_true", help="traffic only (a smoke run)")
    args = ap.parse_args()
    if args.fresh and args.work.exists():
        shutil.rmtree(args.work)
    soak = Soak(args.work)
    soak.probe = args.probe or args.trace
    soak.trace = args.trace
    soak.prepare()
    soak.start_apps()
    try:
        for n in NODES:
            soak.start_node(n)
        soak.action("farm_ready", ok=soak.wait_ready())
        time.sleep(3)
        soak.sample("start")
        seconds = args.minutes * 60
        soak.start_load(seconds)
        soak.load_t0 = time.monotonic()  # type: ignore[attr-defined]
        threading.Thread(target=soak.sampler, daemon=True).start()
        scale = seconds / (23 * 60)
        plan: list[tuple[float, Any]] = [
            (120, lambda: soak.sighup(("a",), "no change")),
            (270, lambda: soak.ctl("b", "drain")),
            (330, lambda: soak.ctl("b", "undrain")),
            (420, lambda: soak.rolling_restart("c")),
            (570, lambda: soak.kill_worker("a", 1)),
            (720, change_config(soak)),
            (870, lambda: soak.kill_node("c")),
            (1020, lambda: soak.kill_worker("a", 0)),
            (1110, lambda: soak.sighup(NODES, "no change")),
            (1170, lambda: soak.rolling_restart("a")),
            (1290, revert_config(soak)),
        ]
        for t, act in [] if args.no_actions else plan:
            at(soak, t * scale)
            try:
                act()
            except Exception as e:
                soak.action("action_failed", error=repr(e))
        assert soak.load is not None
        soak.load.wait()
        soak.action("load_ended", code=soak.load.returncode)
        # traffic stopped: wait past idle_timeout and pool_idle_timeout, sampling on
        time.sleep(args.settle)
        soak.stop_sampling.set()
        soak.sample("end")
        time.sleep(20)
        soak.sample("end2")
    finally:
        soak.stop_sampling.set()
        soak.close()
    return 0


def change_config(soak: Soak) -> Any:
    def act() -> None:
        # a live change (previous_secrets, c's renewed link certificate) and one that
        # needs a restart (limits.head_timeout: reload_partial lists it)
        soak.lb("certs", str(soak.work / "certs"), "--farm", "soak", "--nodes", "c")
        soak.config.write_text(
            farm_toml(soak.secret, previous=[secrets.token_urlsafe(48)],
                      extra_limits="head_timeout = 6.0")
        )  # fmt: skip
        soak.sighup(NODES, "previous_secrets added, c's link cert renewed, head_timeout 6")

    return act


def revert_config(soak: Soak) -> Any:
    def act() -> None:
        soak.server_cert()  # the tls service's certificate renewed in place
        soak.config.write_text(farm_toml(soak.secret))
        soak.sighup(NODES, "previous_secrets removed, head_timeout back, tls cert renewed")

    return act


if __name__ == "__main__":
    sys.exit(main())

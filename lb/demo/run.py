"""`lb demo`: run a 3-node farm on loopback with the demo application behind each node.

It writes a farm file into a temporary directory, serves the three demo
applications in this process, starts one `lb run` child process per node,
waits until every node can reach every home, prints the addresses and a few
curl commands, and runs until Ctrl-C or SIGTERM; then it stops the children
and removes the temporary directory. It is an edge: it must not implement
any routing itself, only start the real nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from lb.certs import ensure_certs
from lb.demo.app import NODE_HEADER, make_app
from lb.routing.cookie import CookieKeyring

NODES = ("a", "b", "c")
HOST = "127.0.0.1"
FARM_NAME = "demo"
COOKIE_NAME = "lbhome"
JAR = "/tmp/lb-demo.jar"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class DemoNode:
    name: str
    listen: int
    forward: int
    app: int


def demo_nodes(port_base: int) -> list[DemoNode]:
    """Node i (1-based) listens on base+i, forwards on base+100+i, its app is on base+200+i."""
    return [
        DemoNode(name, port_base + i, port_base + 100 + i, port_base + 200 + i)
        for i, name in enumerate(NODES, start=1)
    ]


def farm_toml(nodes: list[DemoNode], secret: str) -> str:
    """The farm file of the demo: one http service homed by the home cookie or /cart/<id>."""
    lines = [
        "# Written by `lb demo`: three nodes on loopback, one http service.",
        "[farm]",
        f'name = "{FARM_NAME}"',
        f'secret = "{secret}"',
        'link_security = "mtls"',
        'link_certs = "certs"',
        f'cookie_name = "{COOKIE_NAME}"',
        "",
        "[limits]",
        "ping_interval = 0.5",
        "dead_after = 2.0",
        "",
        "[log]",
        'level = "info"',
        'format = "json"',
        "",
        "[[services]]",
        'name = "web"',
        'protocol = "http"',
        "extractors = [",
        '  { kind = "home-cookie" },',
        '  { kind = "uri-path", segments = 2, prefix = "/cart/" },',
        "]",
    ]
    for n in nodes:
        lines += [
            "",
            "[[nodes]]",
            f'name = "{n.name}"',
            f'forward = "{HOST}:{n.forward}"',
            "workers = 1",
            f'listen = {{ web = "{HOST}:{n.listen}" }}',
            f'apps = {{ web = "{HOST}:{n.app}" }}',
        ]
    return "\n".join(lines) + "\n"


def busy_port(nodes: list[DemoNode]) -> int | None:
    """The first port of the demo that cannot be bound on loopback, or None."""
    for n in nodes:
        for port in (n.listen, n.forward, n.app):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((HOST, port))
                except OSError:
                    return port
    return None


def usage_text(nodes: list[DemoNode], workdir: Path) -> str:
    """What the demo prints once the farm answers: addresses and curl commands."""
    out = [f"lb demo: a 3-node farm on loopback (farm file and node logs in {workdir})", ""]
    for n in nodes:
        out.append(
            f"  node {n.name}: entry http://{HOST}:{n.listen}/   "
            f"forward {HOST}:{n.forward}   app {HOST}:{n.app}"
        )
    out += [
        "",
        "A session sticks to its home whichever node you enter by",
        "(same node, session_hits 1, 2, 3):",
        "",
        f"  rm -f {JAR}",
    ]
    for n in nodes:
        out.append(f"  curl -s -c {JAR} -b {JAR} http://{HOST}:{n.listen}/")
    out += [
        "",
        "A URI homes by its path (/cart/42 reaches the same node from every entry):",
        "",
    ]
    for n in nodes:
        out.append(f"  curl -s http://{HOST}:{n.listen}/cart/42")
    out += ["", "Press Ctrl-C to stop."]
    return "\n".join(out)


def _sign_cookie(secret: str, home: str) -> str:
    keyring = CookieKeyring(FARM_NAME, secret.encode("utf-8"))
    return keyring.sign(home, int(time.time()) + 3600)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the demo dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


class _Children:
    """The `lb run` child processes, each in its own session so Ctrl-C reaches only us."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, config: Path, workdir: Path) -> None:
        for name in NODES:
            log = workdir / f"node-{name}.log"
            self.logs[name] = log
            with log.open("wb") as err:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "lb", "run", "--config", str(config), "--node", name],
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )

    def exited(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            text = self.logs[name].read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> bool:
        """SIGTERM every child, SIGKILL what is left after STOP_TIMEOUT; True if none was killed."""
        quiet = True
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                quiet = False
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # A node may have started workers of its own in its process group.
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        return quiet


async def _probe(session: aiohttp.ClientSession, entry: DemoNode, home: str, cookie: str) -> bool:
    url = f"http://{HOST}:{entry.listen}/healthz"
    try:
        async with session.get(
            url,
            headers={"Cookie": f"{COOKIE_NAME}={cookie}"},
            timeout=aiohttp.ClientTimeout(total=2.0),
        ) as resp:
            await resp.read()
            return resp.status == 200 and resp.headers.get(NODE_HEADER) == home
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def _wait_ready(
    nodes: list[DemoNode], secret: str, children: _Children, stop: asyncio.Event
) -> str | None:
    """None once every entry reaches every home; else why not."""
    cookies = {n.name: _sign_cookie(secret, n.name) for n in nodes}
    todo = {(entry.name, home.name) for entry in nodes for home in nodes}
    by_name = {n.name: n for n in nodes}
    deadline = time.monotonic() + READY_TIMEOUT
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as s:
        while todo:
            if stop.is_set():
                return "interrupted"
            dead = children.exited()
            if dead:
                return f"node {dead[0]} exited early:\n{children.log_tail(dead[0])}"
            if time.monotonic() > deadline:
                pairs = ", ".join(f"{e}->{h}" for e, h in sorted(todo))
                return f"the farm did not answer within {READY_TIMEOUT:g} s (missing: {pairs})"
            for entry, home in sorted(todo):
                if await _probe(s, by_name[entry], home, cookies[home]):
                    todo.discard((entry, home))
            if todo:
                await asyncio.sleep(0.2)
    return None


async def _serve(port_base: int) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    nodes = demo_nodes(port_base)
    port = busy_port(nodes)
    if port is not None:
        print(
            f"lb demo: port {port} on {HOST} is already in use; the demo needs ports "
            f"{port_base + 1}-{port_base + 3}, {port_base + 101}-{port_base + 103} and "
            f"{port_base + 201}-{port_base + 203}. Choose another base with --port-base.",
            file=sys.stderr,
        )
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="lb-demo-"))
    secret = secrets.token_urlsafe(48)
    config = workdir / "farm.toml"
    ensure_certs(workdir / "certs", FARM_NAME, [n.name for n in nodes])  # mutual TLS links
    config.write_text(farm_toml(nodes, secret))

    runners: list[web.AppRunner] = []
    children = _Children()
    code = 0
    try:
        for n in nodes:
            runner = web.AppRunner(make_app(n.name), access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, HOST, n.app).start()
        children.start(config, workdir)
        problem = await _wait_ready(nodes, secret, children, stop)
        if problem == "interrupted":
            return 0
        if problem is not None:
            print(f"lb demo: {problem}", file=sys.stderr)
            print(f"lb demo: node logs are kept in {workdir}", file=sys.stderr)
            code = 1
            return code
        print(usage_text(nodes, workdir), flush=True)
        while not stop.is_set():
            dead = children.exited()
            if dead:
                print(
                    f"lb demo: node {dead[0]} exited:\n{children.log_tail(dead[0])}",
                    file=sys.stderr,
                )
                print(f"lb demo: node logs are kept in {workdir}", file=sys.stderr)
                code = 1
                return code
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
        print("lb demo: stopping", flush=True)
        return code
    finally:
        if not children.stop():
            print("lb demo: a node did not stop within 5 s and was killed", file=sys.stderr)
        for runner in runners:
            await runner.cleanup()
        if code == 0:
            shutil.rmtree(workdir, ignore_errors=True)


def main(port_base: int = 18000) -> int:
    """Run the demo farm until Ctrl-C or SIGTERM; 0 after a clean stop, 1 on failure."""
    if not 1 <= port_base <= 65535 - 203:
        print(
            f"lb demo: --port-base {port_base} is out of range 1 .. {65535 - 203}",
            file=sys.stderr,
        )
        return 2
    import uvloop

    try:
        result: int = uvloop.run(_serve(port_base))
    except KeyboardInterrupt:
        return 0
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="lb demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port-base", type=int, default=18000)
    sys.exit(main(parser.parse_args().port_base))

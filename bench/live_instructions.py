"""Machine instructions per request of live lb nodes, counted by callgrind.

A script, not a test: ``.venv/bin/python bench/live_instructions.py [--requests N]``.
Starts nginx (the application of each node, answering ``node=<name>``) and a
two-node farm, a and b, each node one process under valgrind's callgrind with
instrumentation off; warms up, turns instrumentation on in both nodes for
exactly N keep-alive requests (10 connections to a, each request carrying a
home cookie), turns it off and prints the user-space instructions each node
executed per request. Scenarios: ``local`` (the cookie names a: a serves it
with its own application), ``forwarded`` (the cookie names b: a is the entry,
b the home, over a plaintext link), ``pooled`` (the requests of each connection
name a and b in turn: half local, half forwarded, as an upstream proxy pooling
many users sends them), and ``local-close`` / ``forwarded-close``: the same
with each request on its own connection (``Connection: close``); each of them also
as ``tls-NAME``: a tls-terminate service, the client speaking TLS to a (the
10 connections' TLS handshakes fall in the measured window: about 2.75 million
instructions each, 14,000 a request of 2,000; callgrind_annotate shows them
under SSL_do_handshake).

Instruction counts do not depend on what else the machine does, so two
versions or builds of lb compare to a fraction of a percent on a busy machine,
where timings spread 10-20 %. They leave out the kernel (syscalls, TCP) and
count the event loop's own work as lb's. The build measured is whatever the
checkout holds: pure Python, or compiled by ``bash scripts/compile.sh``
(``lb --version`` says which; the line printed names it). Needs valgrind and
nginx; takes about a minute per scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "0123456789abcdef0123456789abcdef0123456789"
CONNECTIONS = 10


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def farm_text(ports: dict[str, int], tls: tuple[Path, Path] | None = None) -> str:
    nodes = "".join(
        f"""
[[nodes]]
name = "{n}"
workers = 1
forward = "127.0.0.1:{ports[n + "_forward"]}"
listen = {{ web = "127.0.0.1:{ports[n + "_listen"]}" }}
apps = {{ web = "127.0.0.1:{ports[n + "_app"]}" }}
"""
        for n in ("a", "b")
    )
    return f"""
[farm]
name = "live"
secret = "{SECRET}"
link_security = "plaintext"
cookie_name = "lbhome"

[log]
level = "warning"
access_log = "off"

[[services]]
name = "web"
protocol = "{"tls-terminate" if tls else "http"}"
extractors = [ {{ kind = "home-cookie" }} ]
{f'tls = {{ cert = "{tls[0]}", key = "{tls[1]}" }}' if tls else ""}
{nodes}"""


def nginx_text(d: Path, ports: dict[str, int]) -> str:
    temps = " ".join(f"{k}_temp_path {d}/{k};" for k in ("client_body", "proxy", "fastcgi"))
    temps += f" uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;"
    answer = 'location / {{ return 200 "node={}\\n"; }}'
    servers = "".join(
        f"server {{ listen 127.0.0.1:{ports[n + '_app']}; {answer.format(n)} }}\n"
        for n in ("a", "b")
    )
    return (
        f"worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; keepalive_requests 1000000; {temps}\n{servers}}}\n"
    )


async def drive(
    port: int, cookies: dict[str, str], n: int, close: bool = False, tls: bool = False
) -> None:
    """n requests over CONNECTIONS keep-alive connections, or each on its own (`close`);
    the requests of a connection carry the home cookies of `cookies` (home -> cookie)
    in turn, and each answer must come from its cookie's home."""
    extra = "Connection: close\r\n" if close else ""
    turns = [
        (
            f"GET / HTTP/1.1\r\nHost: shop\r\nCookie: lbhome={cookie}\r\n{extra}\r\n".encode(),
            f"node={home}\n".encode(),
        )
        for home, cookie in cookies.items()
    ]

    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    async def one_connection(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        for k in range(count):
            request, want = turns[k % len(turns)]
            if close and writer.is_closing():
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if found is None:
                raise SystemExit(f"no Content-Length in {head!r}")
            body = await reader.readexactly(int(found.group(1)))
            if body != want:
                raise SystemExit(f"answered by {body!r}, not {want!r}")
            if close:
                if await reader.read() != b"":
                    raise SystemExit("bytes after a Connection: close response")
                writer.close()
        writer.close()

    await asyncio.gather(*(one_connection(n // CONNECTIONS) for _ in range(CONNECTIONS)))


def wait_listening(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"nothing listens on {port}")


def collected(log: Path) -> int:
    found = re.findall(r"Collected : (\d+)", log.read_text(errors="replace"))
    if not found:
        raise SystemExit(f"callgrind printed no total in {log}:\n{log.read_text()[-2000:]}")
    return int(found[-1])


def measure(scenario: str, requests: int, d: Path, profile: Path | None) -> dict[str, int]:
    """Instructions per request of node a and node b in one scenario; with `profile`,
    callgrind's output of each node is kept there (for callgrind_annotate)."""
    names = [f"{n}_{k}" for n in ("a", "b") for k in ("forward", "listen", "app")]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    tls = None
    if scenario.startswith("tls-"):
        tls = (d / "cert.pem", d / "key.pem")
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"),
                *("ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj"),
                *("/CN=localhost", "-keyout", str(tls[1]), "-out", str(tls[0])),
            ],
            capture_output=True,
            check=True,
        )
    (d / "farm.toml").write_text(farm_text(ports, tls))
    (d / "nginx.conf").write_text(nginx_text(d, ports))
    nginx = subprocess.run(["nginx", "-c", str(d / "nginx.conf")], capture_output=True, text=True)
    if nginx.returncode != 0:
        raise SystemExit(f"nginx did not start: {nginx.stderr}")
    nodes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for n in ("a", "b"):
            with (d / f"{n}.log").open("wb") as log:
                nodes[n] = subprocess.Popen(
                    [
                        "valgrind",
                        "--tool=callgrind",
                        "--instr-atstart=no",
                        "--callgrind-out-file="
                        + (str(profile / f"{scenario}.{n}.callgrind") if profile else "/dev/null"),
                        sys.executable,
                        "-m",
                        "lb",
                        "run",
                        "--config",
                        str(d / "farm.toml"),
                        "--node",
                        n,
                    ],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        deadline = time.monotonic() + 240
        for n in ("a", "b"):
            wait_listening(ports[f"{n}_listen"], deadline)
        sys.path.insert(0, str(ROOT))
        from lb.routing.cookie import CookieKeyring

        kind = scenario.removeprefix("tls-").removesuffix("-close")
        homes = {"local": "a", "forwarded": "b", "pooled": "ab"}[kind]
        close = scenario.endswith("-close")
        keyring = CookieKeyring("live", SECRET.encode())
        cookies = {home: keyring.sign(home, int(time.time()) + 3600) for home in homes}
        port = ports["a_listen"]
        asyncio.run(drive(port, cookies, 400, close, tls is not None))  # warm up, links up
        for proc in nodes.values():
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True)
        asyncio.run(drive(port, cookies, requests, close, tls is not None))
        for proc in nodes.values():
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True)
    finally:
        for proc in nodes.values():
            proc.send_signal(signal.SIGINT)
        for proc in nodes.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        pid = d / "nginx.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGQUIT)
    return {n: collected(d / f"{n}.log") // requests for n in ("a", "b")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--scenarios",
        default="local,forwarded",
        help="comma-separated: local, forwarded, pooled, local-close, forwarded-close; "
        "each also as tls-NAME (a tls-terminate service: the client speaks TLS to a)",
    )
    parser.add_argument(
        "--profile", type=Path, help="keep callgrind's output of each node in this directory"
    )
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    for tool in ("valgrind", "callgrind_control", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install valgrind nginx)")
    build = subprocess.run(
        [sys.executable, "-m", "lb", "--version"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(f"{build}; {args.requests} requests per scenario")
    for scenario in args.scenarios.split(","):
        with tempfile.TemporaryDirectory(prefix="lb-live-") as tmp:
            counts = measure(scenario, args.requests, Path(tmp), args.profile)
        print(
            f"{scenario:10s} entry a {counts['a']:>8,}  home b {counts['b']:>8,}  "
            f"both {counts['a'] + counts['b']:>8,} instructions per request"
        )


if __name__ == "__main__":
    main()

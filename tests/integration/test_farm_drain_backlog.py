"""A drain serves the clients whose connect the kernel already completed; it resets none.

When a node drains it closes its client listeners. A client whose TCP handshake
the kernel completed a moment before, still waiting in a listening socket's
accept queue, must be served like a connection open at the drain (an HTTP answer
says ``Connection: close``), not reset; a connect after the drain is refused.

The race is made deterministic by tests/support/faults (``close-hold``): node b's
first closing of its client listeners holds its event loop for HOLD seconds, so
nothing reads the listening sockets. The test opens CONNECTS connections in that
time (their handshakes complete in the kernel: the listening sockets' accept
queues, read from /proc/net/tcp, hold all of them), lets the drain go on, then
sends a request on each and reads its whole answer. For every service kind a
listener is built for: http, tls-terminate (lb's own accept loop and TLS), tcp and
tls-passthrough; the drain by the admin API (one worker) and by SIGTERM (two
workers, each draining its own SO_REUSEPORT socket at the same moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.admin import AdminFarm
from tests.support.farm import (
    DEFAULT_SERVICES,
    make_cert,
    read_response,
    request_bytes,
)
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

FAULTS = Path(__file__).resolve().parent.parent / "support" / "faults"
HOLD = 3.0  # seconds node b's loop is held at the drain, before its listeners close
CONNECTS = 12  # connections whose handshake completes while b does not accept
ATTEMPTS = 20  # connects that look whether b's listener is open
EXTRACTORS = {
    "http": DEFAULT_SERVICES["web"][1],
    "tls-terminate": '[ { kind = "home-cookie" } ]',
    "tcp": '[ { kind = "client-ip" } ]',
    "tls-passthrough": '[ { kind = "tls-ticket" }, { kind = "tls-session-id" } ]',
}


@dataclass(frozen=True)
class Case:
    protocol: str
    drain: str  # "admin" (POST /drain) or "sigterm"
    workers: int


CASES = [
    Case("http", "admin", 1),
    Case("tls-terminate", "admin", 1),
    Case("tcp", "admin", 1),
    Case("tls-passthrough", "admin", 1),
    Case("http", "sigterm", 2),
    Case("tls-terminate", "sigterm", 2),
]


def accept_queues(port: int) -> list[int]:
    """The accept queue length of every listening IPv4 socket on `port` (/proc/net/tcp:
    a listening socket's rx_queue is the connections its kernel completed, not accepted)."""
    queues = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if fields[3] == "0A" and local_port == port:
            queues.append(int(fields[4].split(":")[1], 16))
    return sorted(queues)


def connects_accepted(addr: tuple[str, int]) -> int:
    """How many of ATTEMPTS connects to `addr` were accepted; the others were refused
    (a reset is not expected of a listener that is either open or closed)."""
    accepted = 0
    for _ in range(ATTEMPTS):
        with socket.socket() as sock:
            sock.settimeout(2.0)
            try:
                sock.connect(addr)
            except ConnectionRefusedError:
                continue
            accepted += 1
    return accepted


def notes(path: Path, what: str) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.split()[0] == what)


async def answer(
    sock: socket.socket, case: Case, ctx: ssl.SSLContext | None, home: str, cookie: str
) -> tuple[str, str]:
    """Send one request on an accepted-or-queued connection; (outcome, detail).

    outcome "answered" when the whole answer came and the connection then ended
    cleanly; else "reset", "eof" (closed before an answer) or "bad" (a wrong answer)."""
    try:
        async with asyncio.timeout(15):
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=ctx, server_hostname="localhost" if ctx else None
            )
            try:
                if case.protocol == "tcp":
                    writer.write(b"ping\n")
                    await writer.drain()
                    got = await reader.readexactly(len("node=x\nping\n"))
                    if not (got.startswith(b"node=") and got.endswith(b"\nping\n")):
                        return "bad", repr(got)
                    return "answered", got.decode().split("\n")[0]
                writer.write(request_bytes("GET", "/", {"Cookie": cookie}))
                await writer.drain()
                resp = await read_response(reader)
                node = json.loads(resp.body)["node"] if resp.status == 200 else None
                if resp.status != 200:
                    return "bad", f"status {resp.status}"
                if case.protocol != "tls-passthrough":  # lb reads these requests and answers
                    if node != home:
                        return "bad", f"answered by {node}, the session's home is {home}"
                    if resp.header("connection") != "close":
                        return "bad", f"Connection: {resp.header('connection')}"
                    if await reader.read(1) != b"":
                        return "bad", "bytes after the answer"
                return "answered", f"node={node}"
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except ConnectionResetError as exc:
        return "reset", str(exc)
    except (asyncio.IncompleteReadError, ssl.SSLError, OSError) as exc:
        return "eof", f"{type(exc).__name__}: {exc}"


async def answers(
    socks: list[socket.socket], case: Case, ctx: ssl.SSLContext | None, farm: AdminFarm
) -> list[tuple[str, str]]:
    homes = ["b", "a"]  # sessions homed on the draining node itself and on a peer
    return await asyncio.gather(
        *(
            answer(s, case, ctx, homes[i % 2], farm.cookie_header(homes[i % 2]))
            for i, s in enumerate(socks)
        )
    )


def start_drain(farm: AdminFarm, case: Case) -> Callable[[], None]:
    """Start b's drain; the returned call waits for it to have been ordered."""
    if case.drain == "sigterm":
        farm.kill("b", signal.SIGTERM)
        return lambda: None
    reply: list[Any] = []
    # the admin answer comes once b's loop runs again: after the hold
    thread = threading.Thread(target=lambda: reply.append(farm.post("b", "/drain")))
    thread.start()

    def done() -> None:
        thread.join(timeout=HOLD + 10)
        assert reply == [{"draining": True}]

    return done


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.protocol}-{c.drain}-{c.workers}w")
def test_a_drain_serves_the_connects_the_kernel_completed(tmp_path: Path, case: Case) -> None:
    marks = tmp_path / "hold.txt"
    cert, key = make_cert(tmp_path)
    tls_line = f'tls = {{ cert = "{cert}", key = "{key}" }}'
    farm = AdminFarm(
        tmp_path / "farm",
        services={
            "web": DEFAULT_SERVICES["web"],
            "svc": (case.protocol, EXTRACTORS[case.protocol]),
        },
        service_extra={"svc": (tls_line,)} if case.protocol == "tls-terminate" else {},
        tls_files=(cert, key),
        workers=case.workers,
        # b's loop stops for HOLD seconds: its peers must not declare it dead meanwhile
        limits={"dead_after": 20.0, "head_timeout": 10.0},
        node_env={"b": {"PYTHONPATH": str(FAULTS), "LB_TEST_FAULTS": f"close-hold:{HOLD}:{marks}"}},
    )
    ctx = None
    if case.protocol in ("tls-terminate", "tls-passthrough"):
        ctx = ssl.create_default_context(cafile=str(cert))
    host, port = farm.addr("b", "svc")
    with farm:
        farm.start()
        assert connects_accepted((host, port)) == ATTEMPTS

        def taken() -> None:  # those connects are out of the accept queue: it starts empty
            assert sum(accept_queues(port)) == 0

        eventually_passes(taken, timeout=5, what="b does not take its connects")
        ordered = start_drain(farm, case)

        def held() -> None:
            assert notes(marks, "held") == case.workers

        eventually_passes(held, timeout=10, what="b's workers did not hold at the drain")
        socks = [socket.create_connection((host, port), timeout=2.0) for _ in range(CONNECTS)]
        try:

            def queued() -> None:
                assert sum(accept_queues(port)) == CONNECTS

            eventually_passes(queued, timeout=1.0, what="the connects are not all queued")
            queues = accept_queues(port)
            assert notes(marks, "released") == 0, f"hold too short for the test: {HOLD} s"

            def released() -> None:
                assert notes(marks, "released") == case.workers

            eventually_passes(released, timeout=HOLD + 10, what="b's hold did not end")
            ordered()
            outcomes = asyncio.run(answers(socks, case, ctx, farm))
        finally:
            for s in socks:
                s.close()
        answered = [d for o, d in outcomes if o == "answered"]
        others = [(o, d) for o, d in outcomes if o != "answered"]
        print(
            f"FIGURE drain backlog {case.protocol}/{case.drain}/{case.workers}w: "
            f"{CONNECTS} connects queued (accept queues {queues}), {len(answered)} answered "
            f"({dict(Counter(answered))}); not answered {dict(Counter(o for o, _ in others))}"
            + (f", first: {others[0][1]}" if others else "")
        )
        assert len(answered) == CONNECTS, outcomes
        took = [e["clients"] for e in farm.events("b", "listener_queue_accepted")]
        assert sum(took) == CONNECTS, took  # each worker says what it took from its queue
        assert connects_accepted((host, port)) == 0, "a drained node accepted a new connect"
        if case.drain == "sigterm":
            assert farm.lb_procs["b"].popen.wait(timeout=20) == 0

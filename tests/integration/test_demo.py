"""`lb demo`: the printed curl flow shows a session sticking to its home from every entry."""

from __future__ import annotations

import json
import os
import random
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lb.demo.app import make_app
from lb.demo.run import JAR
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

CURL = "/usr/bin/curl"


def _free_block() -> int:
    """A port base whose nine demo ports are all free right now."""
    for _ in range(50):
        base = random.randrange(20000, 60000, 10)
        ports = [base + off for off in (1, 2, 3, 101, 102, 103, 201, 202, 203)]
        socks = []
        try:
            for p in ports:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of ports for the demo")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[str], Path]]:
    base = _free_block()
    err_path = tmp_path / "demo.stderr"
    err = err_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lb", "demo", "--port-base", str(base)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=err,
        start_new_session=True,
    )
    children: list[int] = []
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        out = b""
        deadline = time.monotonic() + 40
        while b"Ctrl-C" not in out:
            left = deadline - time.monotonic()
            assert left > 0, f"demo printed no addresses: {out!r}\n{err_path.read_text()}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    pytest.fail(f"demo exited ({proc.wait()}): {out!r}\n{err_path.read_text()}")
                out += chunk
        children = _children(proc.pid)
        yield proc, out.decode().splitlines(), tmp_path
    finally:
        children = children or _children(proc.pid)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in children:
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
        err.close()
        if proc.stdout is not None:
            proc.stdout.close()


def _curl(cmd: str) -> dict[str, object]:
    out = subprocess.run(shlex.split(cmd), capture_output=True, timeout=15, check=True, text=True)
    body: dict[str, object] = json.loads(out.stdout)
    return body


def test_demo_session_sticks_and_stops_cleanly(
    demo: tuple[subprocess.Popen[bytes], list[str], Path],
) -> None:
    proc, lines, tmp = demo
    entries = [ln.split("entry ")[1].split()[0] for ln in lines if "entry http://" in ln]
    assert len(entries) == 3, lines
    jar = tmp / "jar.txt"
    session_cmds = [ln.strip().replace(JAR, str(jar)) for ln in lines if f"-c {JAR}" in ln]
    assert len(session_cmds) == 3, lines
    assert sorted(cmd.split()[-1] for cmd in session_cmds) == sorted(entries)
    assert all(cmd.startswith("curl ") for cmd in session_cmds)

    answers = [_curl(cmd) for cmd in session_cmds]
    assert len({a["node"] for a in answers}) == 1, answers
    assert [a["session_hits"] for a in answers] == [1, 2, 3]
    assert "lbhome" in jar.read_text()

    cart_cmds = [ln.strip() for ln in lines if ln.strip().startswith("curl") and "/cart/" in ln]
    assert len(cart_cmds) == 3, lines
    carts = [_curl(cmd) for cmd in cart_cmds]
    assert len({c["node"] for c in carts}) == 1, carts
    assert all(c["path"] == "/cart/42" for c in carts)

    children = _children(proc.pid)
    assert len(children) >= 3, "the demo should run one lb node process per node"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert proc.wait(timeout=10) == 0

    def every_child_gone() -> None:
        alive = [p for p in children if _alive(p)]
        assert not alive, alive

    eventually_passes(every_child_gone, timeout=5, what="demo node processes still alive")
    for url in entries:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with socket.socket() as s:
            # SO_REUSEADDR: closed connections may linger in TIME_WAIT, a listener may not.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # the demo released its ports


def test_demo_names_a_busy_port() -> None:
    base = _free_block()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 102))
        blocker.listen()
        out = subprocess.run(
            [sys.executable, "-m", "lb", "demo", "--port-base", str(base)],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert out.returncode != 0
    assert str(base + 102) in out.stderr
    assert "--port-base" in out.stderr


async def test_demo_app_counts_hits_per_session() -> None:
    async with TestClient(TestServer(make_app("b"))) as client:
        hits = []
        for _ in range(3):
            resp = await client.get("/some/where")
            body = await resp.json()
            assert body["node"] == "b"
            assert body["path"] == "/some/where"
            hits.append(body["session_hits"])
        assert hits == [1, 2, 3]
        other = TestClient(TestServer(make_app("c")))
        async with other:
            body = await (await other.get("/")).json()
        assert (body["node"], body["session_hits"]) == ("c", 1)
        health = await client.get("/healthz")
        assert await health.text() == "ok"

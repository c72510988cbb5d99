"""workers = 2: two processes per node share its ports (SO_REUSEPORT).

Whichever worker of whichever node takes a connection, a session homed on a
node stays there; an application cookie learned by one worker is found by every
worker of every node (the directory travels between a node's workers on the
supervisor's bus); a killed worker is restarted; SIGTERM drains every worker
and the node exits 0 with no process left behind. The workers of a node speak for
it with one voice: a restarted worker does not outbid its siblings' incarnation,
and an application going down and up is announced once per change.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.farm import Farm
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

CHAIN = '[ { kind = "cookie", name = "sid" }, { kind = "home-cookie" } ]'
CONNECTIONS = 24  # new connections per check: spread over both workers by the kernel


def get(farm: Farm, entry: str, cookie: str | None) -> tuple[str, str | None]:
    host, port = farm.addr(entry)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        sid = next(
            (
                v.split(";")[0]
                for k, v in resp.getheaders()
                if k.lower() == "set-cookie" and v.startswith("sid=")
            ),
            None,
        )
        return str(json.loads(resp.read())["node"]), sid
    finally:
        conn.close()


def workers_of(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry))
    return children


def worker_pid(supervisor: int, index: int) -> int:
    """The pid of worker `index` (its `--worker` argument) of a node's supervisor."""
    for pid in workers_of(supervisor):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--worker" in args and args[args.index(b"--worker") + 1] == str(index).encode():
            return pid
    raise AssertionError(f"no worker {index} under {supervisor}")


def settle(farm: Farm, timeout: float = 15.0) -> None:
    """Every worker of every entry reaches every home (the farm's probe sees one worker).

    Pair by pair, CONNECTIONS // 2 new connections in a row must reach the home; one
    connection per check, no pause between checks, one deadline for all pairs.
    """
    todo = [(entry, home) for entry in farm.nodes for home in farm.nodes]
    in_a_row = 0

    def one_more_connection() -> None:
        nonlocal in_a_row
        entry, home = todo[0]
        in_a_row = in_a_row + 1 if get(farm, entry, farm.cookie_header(home))[0] == home else 0
        if in_a_row == CONNECTIONS // 2:
            todo.pop(0)
            in_a_row = 0
        assert not todo, f"{todo[0][0]} -> {todo[0][1]} not settled"

    eventually_passes(one_more_connection, timeout=timeout, interval=0, what="workers not settled")


@pytest.fixture(scope="module")
def wfarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    farm = Farm(tmp_path_factory.mktemp("wfarm"), services={"web": ("http", CHAIN)}, workers=2)
    try:
        farm.start()
        settle(farm)
        yield farm
    finally:
        farm.close()


def test_each_node_runs_two_workers(wfarm: Farm) -> None:
    for node in wfarm.nodes:
        assert len(workers_of(wfarm.pid(node))) == 2


def test_home_cookie_sessions_stay_home_whichever_worker_answers(wfarm: Farm) -> None:
    for home in wfarm.nodes:
        for entry in wfarm.nodes:
            answers = {get(wfarm, entry, wfarm.cookie_header(home))[0] for _ in range(CONNECTIONS)}
            assert answers == {home}, (entry, home, answers)


def test_learned_app_cookie_reaches_every_worker_of_every_node(wfarm: Farm) -> None:
    home, sid = get(wfarm, "b", None)
    assert sid is not None

    def every_entry_finds_the_home() -> None:
        answers = {get(wfarm, entry, sid)[0] for entry in wfarm.nodes for _ in range(8)}
        assert answers == {home}, answers

    eventually_passes(
        every_entry_finds_the_home, timeout=2.0, interval=0.05, what="app cookie not learned"
    )
    # now many new connections through every entry: every worker must know it
    for entry in wfarm.nodes:
        assert {get(wfarm, entry, sid)[0] for _ in range(CONNECTIONS)} == {home}


def test_a_killed_worker_is_restarted_and_the_node_keeps_serving(wfarm: Farm) -> None:
    supervisor = wfarm.pid("c")
    before = workers_of(supervisor)
    os.kill(before[0], signal.SIGKILL)

    def replaced() -> None:
        now = workers_of(supervisor)
        assert len(now) == 2 and before[0] not in now, (before, now)

    eventually_passes(replaced, timeout=10, what="the killed worker was not replaced")
    assert len(workers_of(supervisor)) == 2
    settle(wfarm)
    assert {get(wfarm, "c", wfarm.cookie_header("a"))[0] for _ in range(CONNECTIONS)} == {"a"}


def test_sigterm_drains_all_workers_and_exits_zero(wfarm: Farm) -> None:
    supervisor = wfarm.pid("a")
    children = workers_of(supervisor)
    proc = wfarm.lb_procs["a"]
    proc.expected_exit = True
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.popen.wait(timeout=40) == 0

    def no_worker_left() -> None:
        assert not [pid for pid in children if os.path.exists(f"/proc/{pid}")], children

    eventually_passes(no_worker_left, timeout=0.2, interval=0.02, what="workers outlive the node")


def test_every_worker_of_every_peer_marks_a_draining_node_draining(
    make_farm: Callable[..., Farm],
) -> None:
    """A node says DRAINING on the link one worker of each peer took; every worker must hear."""
    farm = make_farm(services={"web": ("http", CHAIN)}, workers=2, limits={"drain_timeout": 20.0})
    settle(farm)
    # an open client connection keeps a draining for a while
    hold = socket.create_connection(farm.addr("a"))
    try:
        hold.sendall(
            f"GET / HTTP/1.1\r\nHost: x\r\nCookie: {farm.cookie_header('a')}\r\n\r\n".encode()
        )
        assert hold.recv(65536).startswith(b"HTTP/1.1 200")
        farm.lb_procs["a"].expected_exit = True
        os.kill(farm.pid("a"), signal.SIGTERM)

        def every_worker_heard() -> None:
            heard = {
                (peer, rec.get("worker"))
                for peer in ("b", "c")
                for rec in farm.events(peer, "node_state")
                if rec.get("peer") == "a" and rec.get("new") == "draining"
            }
            assert heard >= {(p, w) for p in ("b", "c") for w in (0, 1)}, (
                f"workers that heard a is draining: {heard}"
            )

        eventually_passes(every_worker_heard, timeout=10.0, what="a draining not heard")
        # and so no worker of b or c places a new session on a
        placed = {get(farm, entry, None)[0] for entry in ("b", "c") for _ in range(CONNECTIONS)}
        assert "a" not in placed, placed
    finally:
        hold.close()


def test_a_second_process_for_a_running_node_refuses_to_start(wfarm: Farm) -> None:
    """With SO_REUSEPORT it would bind beside the running node and split its traffic."""
    proc = subprocess.run(
        [sys.executable, "-m", "lb", "run", "--config", str(wfarm.config_path), "--node", "b"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-500:])
    assert "node_already_running" in proc.stdout + proc.stderr
    # the running node is untouched (entry c: an earlier test of this module drained a)
    assert {get(wfarm, "c", wfarm.cookie_header("b"))[0] for _ in range(6)} == {"b"}


@pytest.mark.parametrize("index", [1, 0])
def test_a_restarted_worker_does_not_outbid_its_sibling(
    make_farm: Callable[..., Farm], index: int
) -> None:
    """Both workers of b speak for b. A restarted worker starts in a later second than
    its sibling; if each kept its own incarnation, each would refute what the other
    said about b, one above the other, hundreds of times a second, until b's
    incarnation reached the farm's bound (600 s ahead of the clock)."""
    farm = make_farm(services={"web": ("http", CHAIN)}, workers=2)
    settle(farm)
    supervisor = farm.pid("b")
    old = worker_pid(supervisor, index)
    time.sleep(1.1)  # the new worker's start second is later than its sibling's
    os.kill(old, signal.SIGKILL)

    def replaced() -> None:
        assert old not in workers_of(supervisor) and len(workers_of(supervisor)) == 2

    eventually_passes(replaced, timeout=10, what="the killed worker was not replaced")
    settle(farm)
    time.sleep(1.0)  # a refutation race would run on here
    for observer in ("a", "c"):
        seen = farm.tables(observer)["incarnations"]["b"]
        assert seen <= time.time() + 5, (observer, seen, time.time())
    first = farm.tables("a")["incarnations"]["b"]
    time.sleep(1.0)
    assert farm.tables("a")["incarnations"]["b"] == first


def test_a_worker_that_cannot_start_stops_the_node(tmp_path: Path) -> None:
    """A worker whose start fails (here: its client port is taken by another program)
    fails the same way on every restart; the supervisor must not restart it forever
    (each attempt links to the farm and leaves it again) but exit non-zero at once."""
    farm = Farm(tmp_path, nodes=("a",), workers=2, link_security="plaintext")
    squatter = socket.socket()
    try:
        squatter.bind(farm.addr("a"))
        squatter.listen()
        proc = subprocess.run(
            [sys.executable, "-m", "lb", "run", "--config", str(farm.config_path), "--node", "a"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        squatter.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, (proc.returncode, out[-1500:])
    assert "address already in use" in out, out[-1500:]
    assert "worker_start_failed" in out, out[-1500:]
    assert out.count("worker_started") == 2, out[-1500:]  # no restart

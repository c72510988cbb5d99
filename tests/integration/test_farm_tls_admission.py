"""tls-terminate listeners count a connection from accept on, TLS handshake included.

500 silent sockets against max_connections = 50: the node holds at most 50 of
them (the rest are closed at once, before a byte is read), its memory barely
moves, the silent ones are closed after head_timeout, and then a real TLS client
is served. Connections over the handshake caps wait for a slot (bounded per
source and in all, within head_timeout); a drain serves the waiting ones, a
stop closes them cleanly, with one worker or two. The counts are read from the
tables record (SIGUSR1) and /metrics.
"""

from __future__ import annotations

import http.client
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lb.node.entry import MAX_TLS_HANDSHAKES_PER_SOURCE, MAX_TLS_WAITING_PER_SOURCE
from tests.support.admin import AdminFarm, scrape_value
from tests.support.farm import DEFAULT_SERVICES, HOST, TLS_TERMINATE_SERVICE, Farm, make_cert
from tests.support.wait import eventually, eventually_passes

pytestmark = pytest.mark.integration

SILENT = 500
LIMIT = 50


def _still_open(socks: list[socket.socket]) -> int:
    """Sockets the node has not closed (a closed one reads EOF or an error at once)."""
    n = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                continue
        except BlockingIOError:
            n += 1
            continue
        except OSError:
            continue
    return n


def _wait_tls_handshakes(farm: Farm, **expected: int) -> dict[str, int]:
    """Poll node a's tables record until its TLS handshake counts are `expected`."""

    def counts() -> dict[str, int]:
        found: dict[str, int] = farm.tables("a")["tls_handshakes"]
        assert {k: found[k] for k in expected} == expected, found
        return found

    return eventually_passes(counts, timeout=10, interval=0.2, what="TLS handshake counts")


def test_silent_tls_sockets_count_against_max_connections(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < SILENT + 200:
        pytest.skip(f"descriptor limit {hard} too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    cert, key = make_cert(tmp_path_factory.mktemp("tlsadm"))
    farm = make_farm(
        nodes=("a", "b"),
        services={
            "web": DEFAULT_SERVICES["web"],
            "secure": TLS_TERMINATE_SERVICE,
        },
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
        limits={"max_connections": LIMIT, "head_timeout": 3.0},
    )
    before = farm.rss_mib("a")
    port = farm.ports["a"].listen["secure"]
    socks = []
    try:
        for _ in range(SILENT):
            s = socket.create_connection((HOST, port))
            socks.append(s)
        time.sleep(1.0)  # let the node accept them all; what it holds is measured below
        held = _still_open(socks)
        assert held <= LIMIT, f"{held} silent TLS sockets held with max_connections = {LIMIT}"
        assert held >= LIMIT // 2, f"only {held} held: the listener refuses too much"
        grown = farm.rss_mib("a") - before
        assert grown < 20, f"RSS grew {grown:.1f} MiB"
        # the silent ones are closed after head_timeout (the TLS handshake deadline)
        time.sleep(3.5)
        assert _still_open(socks) == 0
    finally:
        for s in socks:
            s.close()
    # nothing is left counted: not a handshake running, not a connection waiting
    _wait_tls_handshakes(farm, accepted=0, running=0, waiting=0)
    # a real client is served afterwards
    out = subprocess.run(
        ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"https://{HOST}:{port}/"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.stdout == "200", out


def _curl_status(url: str, source: str = HOST, timeout: float = 20.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["curl", "-sk", "--interface", source, "-o", "/dev/null", "-w", "%{http_code}", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_handshakes_over_the_per_source_cap_wait_for_a_slot_instead_of_being_closed(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One source (a NAT, a browser, a load generator) opens more TLS connections at once
    than it may handshake at once: the extra ones wait for a slot of that source, they are
    not closed; another source is not held up meanwhile; a wait counts against head_timeout.

    The source's slots are taken by silent sockets (a slow client's handshakes); a real
    client from the same address queued behind them is served once some of them go."""
    cert, key = make_cert(tmp_path_factory.mktemp("tlswait"))
    farm = make_farm(
        nodes=("a",),
        services={
            "web": DEFAULT_SERVICES["web"],  # the farm's readiness probe
            "secure": TLS_TERMINATE_SERVICE,
        },
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
        limits={"head_timeout": 8.0},
    )
    port = farm.ports["a"].listen["secure"]
    url = f"https://{HOST}:{port}/"
    silent = [socket.create_connection((HOST, port)) for _ in range(MAX_TLS_HANDSHAKES_PER_SOURCE)]
    try:
        time.sleep(0.5)  # every silent socket is accepted and handshaking
        assert _still_open(silent) == MAX_TLS_HANDSHAKES_PER_SOURCE
        queued = _curl_status(url)
        # another address is not behind the first one's queue
        other = _curl_status(url, source="127.0.0.2")
        assert other.communicate(timeout=10)[0] == "200"
        time.sleep(1.0)
        assert queued.poll() is None, "the client over the source's cap was not kept waiting"
        for s in silent[:4]:
            s.close()  # their handshakes fail at once: slots free
        out, err = queued.communicate(timeout=10)
        assert out == "200", (out, err)
        # a socket that waits, then handshakes nothing, is closed head_timeout after accept
        extra = [socket.create_connection((HOST, port)) for _ in range(8)]
        started = time.monotonic()
        extra[-1].settimeout(15)
        assert extra[-1].recv(1) == b""  # queued behind the 28 silent + the 7 before it
        waited = time.monotonic() - started
        assert 6.0 < waited < 10.0, waited
        for s in extra:
            s.close()
    finally:
        for s in silent:
            s.close()
    assert farm.unexpected_exits() == []


def test_one_source_cannot_hold_every_connection_slot_with_sockets_that_never_handshake(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The wait for a handshake slot is bounded per source: past its running handshakes
    and MAX_TLS_WAITING_PER_SOURCE waiting ones, one address's sockets are closed at once,
    and a client from another address is still served."""
    held_at_most = MAX_TLS_HANDSHAKES_PER_SOURCE + MAX_TLS_WAITING_PER_SOURCE
    over = 40
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < held_at_most + over + 200:
        pytest.skip(f"descriptor limit {hard} too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    cert, key = make_cert(tmp_path_factory.mktemp("tlsflood"))
    farm = make_farm(
        nodes=("a",),
        services={
            "web": DEFAULT_SERVICES["web"],
            "secure": TLS_TERMINATE_SERVICE,
        },
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
        limits={"head_timeout": 20.0},
    )
    port = farm.ports["a"].listen["secure"]
    socks = []
    try:
        for _ in range(held_at_most + over):
            socks.append(socket.create_connection((HOST, port)))
        time.sleep(1.0)
        held = _still_open(socks)
        assert held == held_at_most, f"{held} silent sockets of one address held"
        other = _curl_status(f"https://{HOST}:{port}/", source="127.0.0.2")
        assert other.communicate(timeout=10)[0] == "200"
    finally:
        for s in socks:
            s.close()


def _tls_farm(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory, **limits: float
) -> Farm:
    cert, key = make_cert(tmp_path_factory.mktemp("tlscert"))
    return make_farm(
        nodes=("a",),
        services={
            "web": DEFAULT_SERVICES["web"],  # the farm's readiness probe
            "secure": TLS_TERMINATE_SERVICE,
        },
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
        limits=limits,
    )


def test_a_drain_serves_the_clients_waiting_for_a_handshake_slot(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SIGTERM drains: a TLS client accepted before it, still waiting for a handshake slot
    (or handshaking), is served like any connection open at the drain, not reset when the
    node finds no client connection left and stops."""
    farm = _tls_farm(make_farm, tmp_path_factory, head_timeout=8.0, drain_timeout=20.0)
    port = farm.ports["a"].listen["secure"]
    silent = [socket.create_connection((HOST, port)) for _ in range(MAX_TLS_HANDSHAKES_PER_SOURCE)]
    try:
        _wait_tls_handshakes(farm, running=MAX_TLS_HANDSHAKES_PER_SOURCE, waiting=0)
        queued = _curl_status(f"https://{HOST}:{port}/")
        _wait_tls_handshakes(farm, waiting=1)
        farm.kill("a", signal.SIGTERM)
        eventually(lambda: farm.events("a", "draining"), timeout=5, what="the drain")
        time.sleep(1.0)  # a node that does not wait for the queued client has stopped now
        for s in silent[:4]:
            s.close()  # their handshakes fail: slots free, the queued client's starts
        out, err = queued.communicate(timeout=15)
        assert out == "200", (out, err, farm.log_tail("a"))
    finally:
        for s in silent:
            s.close()
    assert farm.lb_procs["a"].popen.wait(timeout=30) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_node_stopping_with_clients_waiting_for_a_handshake_slot_stops_cleanly(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory, sig: int
) -> None:
    """A node that stops (SIGINT, or SIGTERM past drain_timeout) while TLS clients handshake
    and others wait for a slot closes them all; none is handed a slot as the stop cancels
    the handshakes (a handshake started on a closing event loop is an error: "Task was
    destroyed but it is pending", "Event loop is closed")."""
    farm = _tls_farm(make_farm, tmp_path_factory, head_timeout=8.0, drain_timeout=0.5)
    port = farm.ports["a"].listen["secure"]
    waiting = 40
    socks = [
        socket.create_connection((HOST, port))
        for _ in range(MAX_TLS_HANDSHAKES_PER_SOURCE + waiting)
    ]
    try:
        _wait_tls_handshakes(farm, running=MAX_TLS_HANDSHAKES_PER_SOURCE, waiting=waiting)
        farm.kill("a", sig)
        assert farm.lb_procs["a"].popen.wait(timeout=30) == 0
        for s in socks:
            s.settimeout(5)
            assert s.recv(1) == b"", "a socket the stopped node did not close"
    finally:
        for s in socks:
            s.close()
    errors = [r for r in farm.events("a") if r.get("level") in ("error", "critical", "exception")]
    assert errors == [], errors
    assert "Traceback" not in farm.logs("a"), farm.log_tail("a")


def test_connections_waiting_for_a_handshake_slot_leave_half_the_connection_slots(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Sockets that never handshake may wait for a slot, but the waiting ones take at most
    half of max_connections: with a small max_connections (as a low descriptor limit makes
    it) one address's silent sockets do not take every connection slot of the node, and
    its plain http service still answers."""
    limit = 300
    farm = _tls_farm(make_farm, tmp_path_factory, head_timeout=20.0, max_connections=limit)
    port = farm.ports["a"].listen["secure"]
    socks = []
    total = limit + 30
    try:
        for _ in range(total):
            socks.append(socket.create_connection((HOST, port)))

        def every_socket_accepted() -> dict[str, Any]:
            tables = farm.tables("a")
            counters = tables["counters"]
            closed = counters.get("tls_handshakes_refused", 0) + counters.get("clients_refused", 0)
            assert tables["tls_handshakes"]["accepted"] + closed == total, tables
            return tables

        tables = eventually_passes(every_socket_accepted, timeout=10, what="every socket accepted")
        conn = http.client.HTTPConnection(*farm.addr("a"), timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200, tables["tls_handshakes"]  # not 503
        conn.close()
        counts = tables["tls_handshakes"]
        assert counts["running"] == MAX_TLS_HANDSHAKES_PER_SOURCE, counts
        assert counts["waiting"] == limit // 2, counts
    finally:
        for s in socks:
            s.close()


def test_two_workers_drain_serving_the_clients_waiting_for_a_handshake_slot(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each worker of a node drains on SIGTERM and serves the TLS clients waiting for a slot
    of its own: one address's silent sockets fill that address's slots in both workers
    (SO_REUSEPORT spreads them), its real clients wait, and when the silent ones are closed
    at head_timeout every real one is served before the node exits. The waiting clients
    are seen in /metrics, every worker summed."""
    cert, key = make_cert(tmp_path_factory.mktemp("tlsworkers"))
    farm = AdminFarm(
        tmp_path / "farm",
        nodes=("a",),
        workers=2,
        services={
            "web": DEFAULT_SERVICES["web"],
            "secure": TLS_TERMINATE_SERVICE,
        },
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
        limits={"head_timeout": 5.0, "drain_timeout": 20.0},
    )
    clients = 6
    try:
        farm.start()
        port = farm.ports["a"].listen["secure"]
        # both workers run (each reports to worker 0): both accept
        eventually(
            lambda: farm.get_json("a", "/api/status")["workers_reporting"] == 2,
            timeout=20,
            what="both workers reporting",
            retry_on=(OSError,),  # the admin listener opens after the farm answers
        )
        # enough that each worker gets its 32 (SO_REUSEPORT picks a worker per connection)
        silent = [socket.create_connection((HOST, port)) for _ in range(160)]
        running = 2 * MAX_TLS_HANDSHAKES_PER_SOURCE
        waiting = len(silent) - running
        try:

            def gauges() -> tuple[float, float]:
                text = farm.get("a", "/metrics").decode()
                return (
                    scrape_value(text, "lb_tls_handshakes"),
                    scrape_value(text, "lb_tls_handshakes_waiting"),
                )

            eventually(
                lambda: gauges() == (running, waiting),
                timeout=10,
                what="both workers' slots of the address taken",
            )
            queued = [_curl_status(f"https://{HOST}:{port}/") for _ in range(clients)]
            eventually(
                lambda: gauges() == (running, waiting + clients),
                timeout=10,
                what="the real clients waiting",
            )
            farm.kill("a", signal.SIGTERM)
            outs = [q.communicate(timeout=30) for q in queued]
            assert [out for out, _ in outs] == ["200"] * clients, (outs, farm.log_tail("a"))
        finally:
            for s in silent:
                s.close()
        assert farm.lb_procs["a"].popen.wait(timeout=30) == 0
    finally:
        farm.close()

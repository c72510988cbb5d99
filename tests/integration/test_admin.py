"""The admin listener of real nodes: /metrics summed over 2 workers, the JSON API, drain and
undrain (reaching every worker), the token, `lb ctl`, and `promtool check metrics`.

One farm of two nodes with `workers = 2` and a token on every admin listener.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import _finish
from tests.support.admin import AdminFarm, scrape_value
from tests.support.wait import eventually, eventually_passes

pytestmark = pytest.mark.integration

TOKEN = "admin-token-for-tests-0123456789"
REQUESTS = 60  # new connections sent to one entry; the kernel spreads them over its 2 workers


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminFarm]:
    f = AdminFarm(
        tmp_path_factory.mktemp("admin"),
        nodes=("a", "b"),
        workers=2,
        token=TOKEN,
        limits={"health_interval": 0.3, "health_fall": 2, "health_rise": 2},
    )
    try:
        f.start()
    except BaseException:
        f.close()
        raise
    yield f
    _finish(f)


def send_requests(farm: AdminFarm, entry: str, n: int) -> None:
    for _ in range(n):
        conn = http.client.HTTPConnection(*farm.addr(entry), timeout=10)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
        finally:
            conn.close()


def requests_from(farm: AdminFarm, entry: str) -> float:
    return scrape_value(farm.get(entry, "/metrics").decode(), "lb_requests_total", entry=entry)


def settled_requests(farm: AdminFarm, entry: str) -> float:
    """lb_requests_total of `entry` once every worker's sample has caught up (none in flight)."""

    def steady() -> float:
        first = requests_from(farm, entry)
        time.sleep(1.5)  # longer than a worker's shipping interval
        assert requests_from(farm, entry) == first
        return first

    return eventually_passes(steady, timeout=15, what="the request count settles")


def test_counters_add_up_across_two_workers(farm: AdminFarm) -> None:
    before = settled_requests(farm, "a")
    send_requests(farm, "a", REQUESTS)

    def added_up() -> str:
        text = farm.get("a", "/metrics").decode()
        assert scrape_value(text, "lb_workers_reporting") == 2
        total = scrape_value(text, "lb_requests_total", entry="a")
        assert total - before == REQUESTS, f"{total - before} of {REQUESTS}"
        return text

    # siblings ship their samples once a second
    text = eventually_passes(added_up, timeout=10, what="lb_requests_total = requests sent")
    per_worker = [scrape_value(text, "lb_worker_requests_total", worker=w) for w in ("0", "1")]
    assert all(n > 0 for n in per_worker), f"one worker took every connection: {per_worker}"
    assert sum(per_worker) == scrape_value(text, "lb_requests_total")
    # every request went somewhere: to a itself or forwarded to b
    forwarded = scrape_value(text, "lb_forwarded_flows_total", home="b")
    local = scrape_value(text, "lb_requests_total", entry="a", home="a")
    assert forwarded > 0 and local > 0
    assert scrape_value(text, "lb_request_duration_seconds_count") == scrape_value(
        text, "lb_requests_total"
    )


def routed(farm: AdminFarm, entry: str) -> dict[str, float]:
    text = farm.get(entry, "/metrics").decode()
    return {
        r: scrape_value(text, "lb_routed_total", reason=r) for r in ("new-session", "home-cookie")
    }


def test_routing_decisions_are_counted_by_reason(farm: AdminFarm) -> None:
    """Requests of one keep-alive connection, new sessions and homed ones mixed in runs of
    one and of several: lb_routed_total counts each by its reason, none lost or doubled."""
    settled_requests(farm, "a")
    before = routed(farm, "a")
    conn = http.client.HTTPConnection(*farm.addr("a"), timeout=10)
    cookie = ""
    pattern = "nhhnhnnhhhn" * 3  # n: no cookie (a new session), h: the home cookie
    try:
        for kind in pattern:
            conn.request("GET", "/", headers={"Cookie": cookie} if kind == "h" else {})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            cookie = cookie or (resp.getheader("Set-Cookie") or "").split(";")[0]
            assert cookie, "a new session's answer names its home"
    finally:
        conn.close()
    expected = {"new-session": pattern.count("n"), "home-cookie": pattern.count("h")}

    def counted() -> None:
        now = routed(farm, "a")
        assert {r: now[r] - before[r] for r in now} == expected

    eventually_passes(counted, timeout=10, what="lb_routed_total by reason = requests sent")


def _raw_exchange(farm: AdminFarm, entry: str, data: bytes) -> bytes:
    """Send `data` and the client's FIN on a new connection; what came back until lb closed."""
    with socket.create_connection(farm.addr(entry), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def http_400s(farm: AdminFarm, entry: str) -> float:
    text = farm.get(entry, "/metrics").decode()
    return scrape_value(text, "lb_events_total", event="http_400")


def test_every_400_lb_answers_is_counted(farm: AdminFarm) -> None:
    """lb_events_total{event="http_400"} counts the 400 answers lb wrote: a bad head, and a
    head or a body that the client's FIN cut (first or after pipelined requests)."""
    before = http_400s(farm, "a")
    sent = [
        b"NOT A REQUEST\r\n\r\n",
        b"GET /cut HT",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /cut HTTP/1.1\r\nHo",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /cut HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 9\r\n\r\nab",
    ]
    answers = [_raw_exchange(farm, "a", data) for data in sent]
    got = [answer.count(b"HTTP/1.1 400 ") for answer in answers]
    assert got == [1, 1, 1, 1], answers

    def counted() -> None:
        assert http_400s(farm, "a") - before == len(sent)

    eventually_passes(counted, timeout=10, what="http_400 = the 400 answers sent")


def test_promtool_accepts_a_scrape_with_traffic(farm: AdminFarm) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    send_requests(farm, "b", 10)
    text = farm.get("b", "/metrics")
    assert scrape_value(text.decode(), "lb_requests_total") > 0
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def _raw_echo(farm: AdminFarm, entry: str, data: bytes) -> int:
    """One connection to the tcp service `raw`: the application's hello line, then `data`
    echoed; the bytes the client received."""
    with socket.create_connection(farm.addr(entry, "raw"), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        got = 0
        while chunk := sock.recv(65536):
            got += len(chunk)
    return got


def test_tcp_connections_count_their_bytes(farm: AdminFarm) -> None:
    # a tcp connection is one request of status 0; its bytes are in the byte counters too
    # (they used to stay out: lb_request_*_bytes_total had no tcp or tls-passthrough series)
    def raw_bytes() -> tuple[float, float]:
        text = farm.get("a", "/metrics").decode()
        return (
            scrape_value(text, "lb_request_received_bytes_total", service="raw", entry="a"),
            scrape_value(text, "lb_request_sent_bytes_total", service="raw", entry="a"),
        )

    def settled() -> tuple[float, float]:
        first = raw_bytes()
        time.sleep(1.5)  # longer than a worker's shipping interval
        assert raw_bytes() == first
        return first

    # the farm's start probed the service through every entry: count from here on
    before_in, before_out = eventually_passes(settled, timeout=15, what="the bytes settle")
    data = b"x" * 5000
    received = sum(_raw_echo(farm, "a", data) for _ in range(3))
    assert received > 3 * len(data)  # the echo and each connection's hello line

    def counted() -> None:
        got_in, got_out = raw_bytes()
        assert (got_in - before_in, got_out - before_out) == (3 * len(data), received)

    eventually_passes(counted, timeout=15, what="the tcp bytes reach /metrics")


def test_link_and_membership_metrics(farm: AdminFarm) -> None:
    text = farm.get("a", "/metrics").decode()
    assert scrape_value(text, "lb_member_state", member="b", state="alive") == 1
    assert scrape_value(text, "lb_member_state", member="a", state="alive") == 1
    # each worker links out to b; b's two workers' links in land on either worker of a
    assert scrape_value(text, "lb_link_up", peer="b", direction="out", worker="0") == 1
    assert scrape_value(text, "lb_link_up", peer="b", direction="out", worker="1") == 1
    assert scrape_value(text, "lb_link_up", peer="b", direction="in") >= 1
    assert 'lb_link_rtt_seconds{peer="b",worker="1"}' in text
    assert scrape_value(text, "lb_app_up", service="web") == 1


def test_json_api(farm: AdminFarm) -> None:
    status = farm.get_json("a", "/api/status")
    assert status["node"] == "a"
    assert status["workers"] == 2
    assert status["workers_reporting"] == 2
    assert status["members"] == {"a": "alive", "b": "alive"}
    assert status["app_healthy"] is True
    assert farm.get_json("a", "/api/members")["b"]["state"] == "alive"
    links = farm.get_json("a", "/api/links")["links"]
    seen = {(ln["peer"], ln["direction"], ln["worker"]) for ln in links}
    assert {("b", "out", 0), ("b", "out", 1)} <= seen
    assert any(d == "in" for _, d, _ in seen)
    assert set(farm.get_json("a", "/api/tables")) >= {"pending", "forward", "links"}
    assert set(farm.get_json("a", "/api/directory")) == {"entries", "hits", "misses", "rehomed"}
    assert farm.get_json("a", "/api/health")["apps"] == {"web": "up", "raw": "up"}
    farm_view = farm.get_json("a", "/api/farm")
    assert [m["name"] for m in farm_view["members"]] == ["a", "b"]


def test_token(farm: AdminFarm) -> None:
    for token in ("", "wrong-token-0123456789"):
        status, headers, _ = farm.request("a", "GET", "/metrics", token=token)
        assert status == 401
        assert headers["www-authenticate"].startswith("Bearer")
    status, _, _ = farm.request("a", "GET", f"/api/status?token={TOKEN}", token="")
    assert status == 200
    status, _, body = farm.request("a", "GET", "/healthz", token="")  # open: a HEALTHCHECK
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, _ = farm.request("a", "POST", "/drain", token="")
    assert status == 401
    assert farm.get_json("a", "/api/status")["draining"] is False


def test_bad_requests(farm: AdminFarm) -> None:
    assert farm.request("a", "GET", "/nope")[0] == 404
    assert farm.request("a", "GET", "/drain")[0] == 405
    with socket.create_connection(farm.admin("a"), timeout=5) as s:
        s.sendall(b"BLAH\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(farm.admin("a"), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nX: " + b"x" * 10000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lb", "ctl", *args], capture_output=True, text=True, timeout=30
    )


def test_ctl(farm: AdminFarm) -> None:
    host, port = farm.admin("b")
    done = ctl("--admin", f"{host}:{port}", "--token", TOKEN, "status")
    assert done.returncode == 0, done.stderr
    assert "node      b" in done.stdout and "draining  no" in done.stdout
    done = ctl("--config", str(farm.config_path), "--node", "a", "members")
    assert done.returncode == 0, done.stderr
    assert [ln.split()[:2] for ln in done.stdout.splitlines()[1:]] == [
        ["a", "alive"],
        ["b", "alive"],
    ]
    done = ctl("--config", str(farm.config_path), "--node", "a", "health")
    assert done.returncode == 0 and '"ok"' in done.stdout
    done = ctl("--admin", f"{host}:{port}", "status")  # no token
    assert done.returncode == 1 and "wants a token" in done.stderr
    done = ctl("--admin", f"{host}:{port}", "--token", TOKEN + "x", "status")
    assert done.returncode == 1 and "refused the token" in done.stderr, done.stderr


def connect_refused(farm: AdminFarm, node: str) -> bool:
    try:
        socket.create_connection(farm.addr(node), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_drain_and_undrain_reach_every_worker(farm: AdminFarm) -> None:
    host, port = farm.admin("b")
    done = ctl("--admin", f"{host}:{port}", "--token", TOKEN, "drain")
    assert done.returncode == 0 and "draining: yes" in done.stdout, done.stderr

    def drained() -> None:
        assert farm.get_json("a", "/api/members")["b"]["state"] == "draining"
        # both workers closed their client listeners: every new connection is refused
        assert all(connect_refused(farm, "b") for _ in range(10))

    eventually_passes(drained, timeout=10, what="b drains on both workers")
    assert farm.get_json("b", "/healthz") == {"status": "draining"}
    before = scrape_value(farm.get("a", "/metrics").decode(), "lb_forwarded_flows_total")
    send_requests(farm, "a", 20)  # new sessions: none may go to the draining node
    after = scrape_value(farm.get("a", "/metrics").decode(), "lb_forwarded_flows_total")
    assert after == before

    done = ctl("--admin", f"{host}:{port}", "--token", TOKEN, "undrain")
    assert done.returncode == 0 and "draining: no" in done.stdout, done.stderr

    def undrained() -> None:
        assert farm.get_json("a", "/api/members")["b"]["state"] == "alive"
        assert not any(connect_refused(farm, "b") for _ in range(10))

    eventually_passes(undrained, timeout=10, what="b takes sessions again on both workers")
    send_requests(farm, "b", 4)


def test_an_undrained_node_keeps_client_connections_alive(farm: AdminFarm) -> None:
    """After a drain and an undrain, b's answers keep their client connections again: a
    draining node ends every connection after its answer (Connection: close), an undrained
    one must not go on doing so (a pooling client would pay a connect per request)."""
    assert farm.post("b", "/drain") == {"draining": True}
    eventually(
        lambda: all(connect_refused(farm, "b") for _ in range(10)),
        timeout=10,
        what="b drains on both workers",
    )
    assert farm.post("b", "/undrain") == {"draining": False}
    eventually(
        lambda: not any(connect_refused(farm, "b") for _ in range(10)),
        timeout=10,
        what="b listens again",
    )
    closing = []
    for i in range(10):  # new connections: the kernel spreads them over b's two workers
        conn = http.client.HTTPConnection(*farm.addr("b"), timeout=10)
        try:
            for j in range(3):
                conn.request("GET", f"/kept/{i}/{j}")
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
                if resp.will_close:
                    closing.append((i, j, resp.getheader("Connection")))
                    break
        finally:
            conn.close()
    assert closing == [], f"answers that ended their connection after the undrain: {closing}"


def test_an_application_down_shows_in_metrics_health_and_the_farm_view(farm: AdminFarm) -> None:
    farm.stop_backend("b", "web")
    try:

        def down() -> None:
            text = farm.get("b", "/metrics").decode()
            assert scrape_value(text, "lb_app_up", service="web") == 0
            assert scrape_value(text, "lb_app_up", service="raw") == 1
            status, _, body = farm.request("b", "GET", "/healthz", token="")
            assert (status, json.loads(body)) == (503, {"status": "app_down"})
            view = farm.get_json("a", "/api/farm")
            b = next(m for m in view["members"] if m["name"] == "b")
            assert b["state"] == "draining"  # the farm places no new session there
            assert b["app_healthy"] is False and b["apps"]["web"] == "down"

        eventually_passes(down, timeout=10, what="b's application down everywhere")
    finally:
        farm.start_backend("b", "web")

    def up() -> None:
        assert scrape_value(farm.get("b", "/metrics").decode(), "lb_app_up", service="web") == 1
        view = farm.get_json("a", "/api/farm")
        b = next(m for m in view["members"] if m["name"] == "b")
        assert b["state"] == "alive" and b["app_healthy"] is True

    eventually_passes(up, timeout=10, what="b's application up again")

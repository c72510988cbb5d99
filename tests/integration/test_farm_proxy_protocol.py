"""PROXY protocol v2 through a real farm, against a real PROXY-aware application (nginx).

A tcp service with ``app_proxy_protocol = "v2"`` and ``accept_proxy_from``: every
node's application is nginx listening with ``proxy_protocol``, answering with the
address its PROXY header named (``$proxy_protocol_addr``) and the TCP peer it sees
(``$remote_addr``, which is lb). Clients connect from distinct loopback addresses
(127.0.0.5, ...), so the client's address and lb's differ.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lb.wire.proxy import encode_proxy_v2, encode_proxy_v2_local
from tests.support.farm import ACTIVE_FARMS, HOST, Farm
from tests.support.wait import eventually_passes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx (scripts/test.sh)"),
]

FRONT = "127.0.0.9"  # the listed front balancer
SERVICE = "pp"


ANSWER = "node={n} proxy=$proxy_protocol_addr:$proxy_protocol_port remote=$remote_addr\\n"


def nginx_conf(farm: Farm, workdir: Path) -> str:
    servers = "\n".join(
        f"""
    server {{
        listen {HOST}:{farm.ports[n].apps[SERVICE]} proxy_protocol;
        location / {{
            default_type text/plain;
            return 200 "{ANSWER.format(n=n)}";
        }}
    }}"""
        for n in farm.nodes
    )
    temp = "\n".join(
        f"    {kind}_temp_path {workdir}/nginx-{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    log_format pp '$proxy_protocol_addr $remote_addr "$request" $status';
    access_log {workdir}/nginx-access.log pp;
{temp}
{servers}
}}
"""


def http_get(entry: tuple[str, int], source: str, prefix: bytes = b"") -> tuple[bytes, int]:
    """GET / over a raw socket bound to ``source``: (the whole answer, the source port)."""
    with socket.create_connection(entry, timeout=5, source_address=(source, 0)) as sock:
        port = sock.getsockname()[1]
        sock.sendall(prefix + b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks), port


def answer(raw: bytes) -> dict[str, str]:
    """The fields of nginx's one-line body (node, proxy, remote)."""
    assert raw.startswith(b"HTTP/1.1 200 "), raw
    body = raw.partition(b"\r\n\r\n")[2].decode().strip()
    return dict(field.split("=", 1) for field in body.split())


@pytest.fixture(scope="module")
def pp_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    workdir = tmp_path_factory.mktemp("pp")
    farm = Farm(
        workdir,
        services={SERVICE: ("tcp", '[ { kind = "client-ip" } ]')},
        service_extra={SERVICE: ('app_proxy_protocol = "v2"', f'accept_proxy_from = ["{FRONT}"]')},
        link_security="plaintext",
    )
    nginx: subprocess.Popen[bytes] | None = None
    try:
        # nginx is every node's application (the harness's echo backends would echo
        # lb's PROXY header back into the harness's readiness probe), then the nodes
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_conf(farm, workdir))
        log = (workdir / "nginx-stderr.log").open("ab")
        nginx = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(workdir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        ACTIVE_FARMS.append(farm)  # a failing test's report shows the nodes' logs
        for n in farm.nodes:
            farm._start_node(n)

        def every_entry_agrees_on_the_homes() -> None:
            for last in (5, 6, 7, 8):  # 127.0.0.9 is the front balancer
                homes = set()
                for n in farm.nodes:
                    try:
                        raw, _ = http_get(farm.addr(n, SERVICE), f"127.0.0.{last}")
                    except OSError as exc:  # not listening yet
                        raise AssertionError(f"node {n}: {exc}") from None
                    homes.add(answer(raw)["node"])
                assert len(homes) == 1, f"127.0.0.{last} reached {homes}"

        eventually_passes(every_entry_agrees_on_the_homes, timeout=20, what="farm not ready")
        yield farm
    finally:
        if nginx is not None:
            nginx.terminate()
            try:
                nginx.wait(timeout=5)
            except subprocess.TimeoutExpired:
                nginx.kill()
        farm.close()


def home_of(farm: Farm, source: str) -> str:
    raw, _ = http_get(farm.addr(farm.nodes[0], SERVICE), source)
    return answer(raw)["node"]


@pytest.mark.parametrize("path", ["local", "forwarded"])
def test_the_application_sees_the_client_address(pp_farm: Farm, path: str) -> None:
    source = "127.0.0.5"
    home = home_of(pp_farm, source)
    entry = home if path == "local" else next(n for n in pp_farm.nodes if n != home)
    raw, port = http_get(pp_farm.addr(entry, SERVICE), source)
    got = answer(raw)
    assert got["node"] == home
    assert got["proxy"] == f"{source}:{port}"  # the client, from lb's PROXY v2 header
    assert got["remote"] == HOST  # the TCP peer nginx sees is lb itself


def test_each_client_address_arrives_as_sent(pp_farm: Farm) -> None:
    for last in (6, 7, 8):
        source = f"127.0.0.{last}"
        for entry in pp_farm.nodes:
            raw, port = http_get(pp_farm.addr(entry, SERVICE), source)
            assert answer(raw)["proxy"] == f"{source}:{port}"


@pytest.mark.parametrize("client_ip", ["203.0.113.50", "2001:db8::50"])
def test_a_listed_front_balancer_names_the_client(pp_farm: Farm, client_ip: str) -> None:
    # an IPv6 client reaches IPv4 homes too: mixed families in the connection reference
    header = encode_proxy_v2((client_ip, 4242), (HOST, pp_farm.ports["a"].listen[SERVICE]))
    homes = set()
    for entry in pp_farm.nodes:
        raw, _ = http_get(pp_farm.addr(entry, SERVICE), FRONT, prefix=header)
        got = answer(raw)
        assert got["proxy"] == f"{client_ip}:4242"
        homes.add(got["node"])
    assert len(homes) == 1  # routed by the client's address (client-ip), not the balancer's


def test_a_local_header_from_the_front_means_the_front_itself(pp_farm: Farm) -> None:
    raw, port = http_get(pp_farm.addr("b", SERVICE), FRONT, prefix=encode_proxy_v2_local())
    assert answer(raw)["proxy"] == f"{FRONT}:{port}"


def test_a_front_balancer_without_a_header_is_closed(pp_farm: Farm) -> None:
    start = time.monotonic()
    raw, _ = http_get(pp_farm.addr("a", SERVICE), FRONT)
    assert raw == b""  # closed without a byte: nothing reached an application
    assert time.monotonic() - start < 2.0  # at once, not at the head timeout


def _half_header_from_the_front(farm: Farm, service: str) -> bytes:
    """Half a PROXY v2 header from the listed front balancer, then silence: what lb sends
    back before it closes (the farm's head_timeout)."""
    header = encode_proxy_v2(("203.0.113.77", 7777), (HOST, 80))
    with socket.create_connection(
        farm.addr("a", service), timeout=15, source_address=(FRONT, 0)
    ) as sock:
        sock.sendall(header[:20])
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def _logged_as_an_unfinished_header(farm: Farm, service: str) -> None:
    def logged() -> None:
        lines = [
            e
            for e in farm.events("a", "access")
            if e.get("service") == service and e.get("client") == FRONT
        ]
        assert lines, "no access line for the front balancer's connection yet"
        assert lines[-1]["error"] == "PROXY v2 header not complete within head_timeout"

    eventually_passes(logged, timeout=5, what="the access line of the half header")


def test_half_a_header_from_the_front_is_closed_at_the_head_timeout(pp_farm: Farm) -> None:
    assert _half_header_from_the_front(pp_farm, SERVICE) == b""
    # the access line says what was missing (it used to say "no identifier")
    _logged_as_an_unfinished_header(pp_farm, SERVICE)


def test_a_header_from_an_unlisted_address_is_just_bytes(pp_farm: Farm) -> None:
    forged = encode_proxy_v2(("203.0.113.66", 1), (HOST, 80))
    raw, _ = http_get(pp_farm.addr("a", SERVICE), "127.0.0.5", prefix=forged)
    # nginx read lb's header (the real client), then the forged one as the start of
    # the request: not HTTP, so a 400; the forged address was never taken as the client
    assert raw.startswith(b"HTTP/1.1 400 "), raw
    assert b"203.0.113.66" not in raw

    def logged() -> str:  # nginx writes its access line as it finishes the request
        access = (pp_farm.workdir / "nginx-access.log").read_text()
        lines = [line for line in access.splitlines() if line.endswith(" 400")]
        assert lines, "no 400 in nginx's access log yet"
        return access

    access = eventually_passes(logged, timeout=5, what="nginx logged the 400")
    assert "203.0.113.66" not in access
    last = [line for line in access.splitlines() if line.endswith(" 400")][-1]
    assert last.startswith("127.0.0.5 127.0.0.1 "), last  # the PROXY address, then lb's


# -- an http service behind a listed front balancer ----------------------------------


@pytest.fixture(scope="module")
def http_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    farm = Farm(
        tmp_path_factory.mktemp("pp-http"),
        service_extra={"web": (f'accept_proxy_from = ["{FRONT}"]',)},
        link_security="plaintext",
    )
    try:
        farm.start()
        yield farm
    finally:
        farm.close()


def test_http_from_the_front_balancer_is_served_after_its_header(http_farm: Farm) -> None:
    header = encode_proxy_v2(("203.0.113.50", 4242), (HOST, 80))
    for entry in http_farm.nodes:
        raw, _ = http_get(
            http_farm.addr(entry), FRONT, prefix=header + b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        # both requests reached the application: the header was read and dropped
        assert raw.count(b"HTTP/1.1 200 ") == 2, raw
        raw, _ = http_get(http_farm.addr(entry), FRONT)
        assert raw == b""  # the balancer must send the header: closed, no answer


def test_http_header_from_an_unlisted_address_is_a_bad_request(http_farm: Farm) -> None:
    header = encode_proxy_v2(("203.0.113.50", 4242), (HOST, 80))
    raw, _ = http_get(http_farm.addr("a"), "127.0.0.5", prefix=header)
    assert raw.startswith(b"HTTP/1.1 400 "), raw  # read as (broken) HTTP, never as PROXY


def test_http_half_a_header_from_the_front_gets_no_http_answer(http_farm: Farm) -> None:
    # the balancer speaks no HTTP: closed without a byte, as after a bad header (it used
    # to get a 408 at the head timeout)
    assert _half_header_from_the_front(http_farm, "web") == b""

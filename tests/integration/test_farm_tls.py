"""TLS listeners through a real farm, with real clients: curl and openssl s_client.

tls-terminate: lb ends TLS (its certificate), reads the home cookie, sets it
with Secure, and forwards plaintext to the home's application.
tls-passthrough: lb reads only the ClientHello and splices the encrypted stream
to the home's TLS application; a resumed TLS 1.2 session (session id or
ticket) must land on the node whose application holds it, whichever node the
client enters by. The applications are TLS servers with their own session
caches and ticket keys, so a resumption that lands elsewhere is not "Reused".
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.farm import (
    DEFAULT_SERVICES,
    TLS_TERMINATE_SERVICE,
    Farm,
    make_cert,
    request_bytes,
)
from tests.support.wait import eventually_passes

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
]

SERVICES = {
    "web": DEFAULT_SERVICES["web"],
    "secure": TLS_TERMINATE_SERVICE,
    "own-keys": TLS_TERMINATE_SERVICE,  # tls.tickets = "worker": OpenSSL's key per process
    "pt": ("tls-passthrough", '[ { kind = "tls-ticket" }, { kind = "tls-session-id" } ]'),
}


@pytest.fixture(scope="module")
def tls_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    workdir = tmp_path_factory.mktemp("tlsfarm")
    cert, key = make_cert(workdir)
    farm = Farm(
        workdir,
        services=SERVICES,
        service_extra={
            "secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',),
            "own-keys": (f'tls = {{ cert = "{cert}", key = "{key}", tickets = "worker" }}',),
        },
        tls_files=(cert, key),
    )
    try:
        farm.start()
        yield farm
    finally:
        farm.close()


def tls_url(farm: Farm, node: str, path: str = "/") -> str:
    host, port = farm.addr(node, "secure")
    return f"https://{host}:{port}{path}"


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sk", "--max-time", "10", *args], capture_output=True, text=True, timeout=20
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_tls_terminate_session_sticks_across_entries_with_curl(
    tls_farm: Farm, tmp_path: Path
) -> None:
    jar = tmp_path / "jar"
    first = curl("-i", "-c", str(jar), "-b", str(jar), tls_url(tls_farm, "b"))
    assert first.returncode == 0, first.stderr
    # text mode turned CRLF into LF
    head, _, body = first.stdout.partition("\n\n")
    set_cookie = [h for h in head.splitlines() if h.lower().startswith("set-cookie: lbhome=")]
    assert len(set_cookie) == 1, head
    attributes = [a.strip() for a in set_cookie[0].split(";")]
    assert {"Secure", "HttpOnly", "SameSite=Lax", "Path=/"} <= set(attributes)
    home = json.loads(body)["node"]
    hits = [json.loads(body)["session_hits"]]
    for entry in ("a", "c", "b", "a"):
        r = curl("-c", str(jar), "-b", str(jar), tls_url(tls_farm, entry))
        assert r.returncode == 0, r.stderr
        answer = json.loads(r.stdout)
        assert answer["node"] == home, (entry, answer)
        hits.append(answer["session_hits"])
    assert hits == [1, 2, 3, 4, 5]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_a_tls_client_that_ends_its_session_makes_no_warning(tls_farm: Farm) -> None:
    """curl ends each TLS session with close_notify after its answer. That is a normal
    close: it must not write a warning to the node's log per connection (asyncio warns
    "returning true from eof_received() has no effect when using ssl" when the protocol
    asks to keep a TLS connection half-open, which the TLS layer cannot do)."""
    before = tls_farm.logs("c").count("eof_received")
    for _ in range(5):
        r = curl("-o", "/dev/null", "-w", "%{http_code}", tls_url(tls_farm, "c"))
        assert (r.returncode, r.stdout) == (0, "200"), r.stderr

    def five_more_access_lines() -> None:
        assert tls_farm.logs("c").count('"path": "/", "status": 200') >= 5

    # a warning would come as each client's close_notify is read, after its answer
    eventually_passes(five_more_access_lines, timeout=10, what="the access lines on c")
    assert tls_farm.logs("c").count("eof_received") == before, tls_farm.log_tail("c")


async def test_a_tls_client_that_resets_mid_download_makes_no_warning(tls_farm: Farm) -> None:
    """TLS clients that reset their connection after the first 256 KiB of a 64 MiB
    answer from their node's own application. Until lb's protocol hears that the
    connection is lost (the TLS layer tells it one loop turn later), the application's
    bytes keep coming: written into the closed TLS transport, each write past the fifth
    made asyncio warn "SSL connection is closed" (about 20 lines per client, with no
    word of which connection) and cost its encryption. lb writes nothing to a
    transport that is closing."""
    before = tls_farm.logs("c").count("SSL connection is closed")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    request = request_bytes("GET", f"/bytes/{64 << 20}", {"Cookie": tls_farm.cookie_header("c")})
    async with asyncio.timeout(30):
        for _ in range(5):
            reader, writer = await asyncio.open_connection(*tls_farm.addr("c", "secure"), ssl=ctx)
            writer.write(request)
            await reader.readexactly(256 * 1024)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
    await asyncio.to_thread(tls_farm.assert_clean)
    assert tls_farm.logs("c").count("SSL connection is closed") == before, tls_farm.log_tail("c")


def test_tls_terminate_offers_http11_by_alpn(tls_farm: Farm) -> None:
    host, port = tls_farm.addr("a", "secure")
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-alpn", "h2,http/1.1"],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "ALPN protocol: http/1.1" in r.stdout, r.stdout[-2000:]


def s_client(farm: Farm, entry: str, *args: str) -> tuple[str, str]:
    """One TLS 1.2 connection through `entry`'s passthrough listener: (handshake kind, node)."""
    host, port = farm.addr(entry, "pt")
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_2", "-ign_eof", *args],
        input="GET / HTTP/1.0\r\nHost: localhost\r\n\r\n",
        capture_output=True,
        text=True,
        timeout=20,
    )
    kind = re.search(r"^(New|Reused), TLSv1\.2", r.stdout, re.M)
    node = re.search(r'\{"node": "([a-z]+)"', r.stdout)
    assert kind and node, r.stdout[-3000:] + r.stderr[-2000:]
    return kind.group(1), node.group(1)


@pytest.mark.parametrize("mode", ["session-id", "ticket"])
def test_tls12_resumption_through_any_entry_lands_on_the_session_holder(
    tls_farm: Farm, tmp_path: Path, mode: str
) -> None:
    sess = tmp_path / "sess.pem"
    extra = ["-no_ticket"] if mode == "session-id" else []
    before = {n: tls_farm.tables(n)["directory"] for n in tls_farm.nodes}
    kind, home = s_client(tls_farm, "a", "-sess_out", str(sess), *extra)
    assert kind == "New"

    # the home learned the session from its ServerHello / NewSessionTicket and
    # replicated it to every node: each node's directory grows as much as the home's
    def replicated() -> None:
        grown = {n: tls_farm.tables(n)["directory"] - before[n] for n in tls_farm.nodes}
        assert grown[home] >= 1 and set(grown.values()) == {grown[home]}, grown

    eventually_passes(replicated, timeout=1.0, what="the new TLS session is not in every directory")
    for entry in ("b", "c", "a", "b", "c"):
        kind, node = s_client(tls_farm, entry, "-sess_in", str(sess), *extra)
        assert (kind, node) == ("Reused", home), (mode, entry)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_access_lines_of_tls_terminate_requests_carry_the_connections_tls(
    tls_farm: Farm,
) -> None:
    """Each access line of a tls-terminate request names its connection's TLS version,
    cipher and the server name (SNI) the client sent, or null (nginx's $ssl_protocol,
    $ssl_cipher, $ssl_server_name; HAProxy's %sslv, %sslc); a plain http line has none."""
    host, port = tls_farm.addr("a", "secure")
    # curl sends SNI for a name, not for an address; two URLs: one keep-alive connection
    r = curl(
        "--tlsv1.3",
        "--resolve",
        f"sni.example.test:{port}:{host}",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{num_connects}\n",
        f"https://sni.example.test:{port}/tlslog/one",
        f"https://sni.example.test:{port}/tlslog/two",
    )
    assert r.stdout.split("\n")[:2] == ["200 1", "200 0"], r.stdout + r.stderr
    s = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_2", "-noservername",
         "-ign_eof"],
        input="GET /tlslog/nosni HTTP/1.0\r\nHost: localhost\r\n\r\n",
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    cipher = re.search(r"Cipher is (\S+)", s.stdout)
    assert cipher and "HTTP/1.1 200" in s.stdout, s.stdout[-3000:]
    web_host, web_port = tls_farm.addr("a", "web")
    plain = curl(
        "-o", "/dev/null", "-w", "%{http_code}", f"http://{web_host}:{web_port}/tlslog/plain"
    )
    assert plain.stdout == "200", plain

    def lines() -> dict[str, dict[str, object]]:
        found = {
            str(rec["path"]): rec
            for rec in tls_farm.events("a", "access")
            if str(rec.get("path", "")).startswith("/tlslog/")
        }
        assert set(found) == {"/tlslog/one", "/tlslog/two", "/tlslog/nosni", "/tlslog/plain"}
        return found

    found = eventually_passes(lines, timeout=5, what="the access lines of the TLS requests")
    for path in ("/tlslog/one", "/tlslog/two"):
        rec = found[path]
        assert rec["service"] == "secure" and rec["status"] == 200, rec
        assert (rec["tls_version"], rec["tls_sni"]) == ("TLSv1.3", "sni.example.test"), rec
        assert str(rec["tls_cipher"]).startswith("TLS_"), rec  # a TLS 1.3 suite's name
    nosni = found["/tlslog/nosni"]
    assert (nosni["tls_version"], nosni["tls_sni"]) == ("TLSv1.2", None), nosni
    assert nosni["tls_cipher"] == cipher.group(1), nosni  # as OpenSSL names it
    assert not [key for key in found["/tlslog/plain"] if key.startswith("tls_")]


def test_a_server_name_that_is_not_ascii_fails_its_handshake_without_a_traceback(
    tls_farm: Farm,
) -> None:
    """A ClientHello whose server name is not ASCII (RFC 6066 wants an ASCII host name):
    Python's ssl refuses the handshake before the context's sni_callback runs and writes
    the UnicodeDecodeError to stderr as "Exception ignored", one traceback per
    handshake anyone can send, in the middle of the JSON log lines. The handshake is
    refused, the log stays clean, and the listener serves the next client."""
    host, port = tls_farm.addr("a", "secure")
    before = tls_farm.logs("a")
    for _ in range(3):
        r = subprocess.run(
            [b"openssl", b"s_client", b"-connect", f"{host}:{port}".encode(),
             b"-servername", b"bad\xffname.test"],
            input=b"", capture_output=True, timeout=20,
        )  # fmt: skip
        assert b"Reused" not in r.stdout and b"New, TLSv1" not in r.stdout, r.stdout
    ok = curl("-o", "/dev/null", "-w", "%{http_code}", tls_url(tls_farm, "a", "/after-bad-sni"))
    assert ok.stdout == "200", ok
    added = tls_farm.logs("a")[len(before) :]
    assert "Traceback" not in added and "Exception ignored" not in added, added[-3000:]


def terminate_s_client(
    farm: Farm, entry: str, cookie: str, *args: str, service: str = "secure"
) -> tuple[str, str]:
    """One request with `cookie` through `entry`'s tls-terminate listener, by openssl
    s_client: (handshake kind, the node whose application answered)."""
    host, port = farm.addr(entry, service)
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-ign_eof", *args],
        input=f"GET /resume HTTP/1.0\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n",
        capture_output=True,
        text=True,
        timeout=20,
    )
    kind = re.search(r"^(New|Reused), TLSv1\.[23]", r.stdout, re.M)
    node = re.search(r'\{"node": "([a-z]+)"', r.stdout)
    assert kind and node, r.stdout[-3000:] + r.stderr[-2000:]
    return kind.group(1), node.group(1)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_a_tls_session_resumes_on_any_node_of_the_farm(
    tls_farm: Farm, tmp_path: Path, version: str
) -> None:
    """docs/tls.md: every node seals session tickets with the key it derives from the
    farm secret (tls.tickets = "farm", the default), so a client sent to another entry
    resumes its TLS session there instead of a full handshake (OpenSSL's own key per
    process made it "New" on b and c), and its home cookie still takes its request to
    its home."""
    sess = tmp_path / "sess.pem"
    cookie = tls_farm.cookie_header("c")
    assert terminate_s_client(tls_farm, "a", cookie, version, "-sess_out", str(sess)) == (
        "New",
        "c",
    )
    for entry in ("a", "b", "c", "a"):
        assert terminate_s_client(tls_farm, entry, cookie, version, "-sess_in", str(sess)) == (
            "Reused",
            "c",
        ), entry


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_with_worker_ticket_keys_a_session_resumes_on_its_node_only(
    tls_farm: Farm, tmp_path: Path, version: str
) -> None:
    """tls.tickets = "worker": OpenSSL's own random key per process, as before farm
    keys: a session resumes only with the node (here: its one process) that issued
    it; another entry makes a full handshake, and the home cookie holds."""
    sess = tmp_path / "sess.pem"
    cookie = tls_farm.cookie_header("c")
    first = terminate_s_client(
        tls_farm, "a", cookie, version, "-sess_out", str(sess), service="own-keys"
    )
    assert first == ("New", "c")
    for entry, kind in (("a", "Reused"), ("b", "New"), ("c", "New"), ("a", "Reused")):
        got = terminate_s_client(
            tls_farm, entry, cookie, version, "-sess_in", str(sess), service="own-keys"
        )
        assert got == (kind, "c"), entry


def test_farm_ticket_keys_resume_sessions_on_every_worker_of_a_node(tmp_path: Path) -> None:
    """Two workers share a node's port (SO_REUSEPORT): the kernel gives each new
    connection to either. With OpenSSL's own key per process ("worker", the control
    here) a reconnect that lands on the other worker makes a full handshake; with the
    farm's key every reconnect resumes (TLS 1.3, 12 reconnects each)."""
    cert, key = make_cert(tmp_path)
    farm = Farm(
        tmp_path,
        nodes=("a", "b"),
        services={"secure": SERVICES["secure"], "own-keys": SERVICES["own-keys"]},
        service_extra={
            "secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',),
            "own-keys": (f'tls = {{ cert = "{cert}", key = "{key}", tickets = "worker" }}',),
        },
        tls_files=(cert, key),
        workers=2,
    )
    try:
        farm.start()
        cookie = farm.cookie_header("a")
        kinds: dict[str, list[str]] = {}
        for service in ("secure", "own-keys"):
            sess = tmp_path / f"{service}.pem"
            first = terminate_s_client(
                farm, "a", cookie, "-tls1_3", "-sess_out", str(sess), service=service
            )
            assert first == ("New", "a")
            kinds[service] = [
                terminate_s_client(
                    farm, "a", cookie, "-tls1_3", "-sess_in", str(sess), service=service
                )[0]
                for _ in range(12)
            ]
    finally:
        farm.close()
    assert "New" in kinds["own-keys"], kinds  # the reconnects reached both workers
    assert kinds["secure"] == ["Reused"] * 12, kinds

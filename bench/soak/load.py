"""The soak's clients: a paced mix of well-behaved and misbehaving traffic (not a CI test).

Started by bench/soak/run.py (`--work DIR --seconds S`); every client outcome
that is not a plain success is one JSON line in DIR/events.jsonl, and successes
are counted per 30 s window (lines with "ev": "window"). Clients:

- pooled: one keep-alive connection per entry carrying 30 sessions round robin
  (lbhome and demo_sid cookies per session), as a pooling proxy would; it
  checks each session stays on its node with its hit counter going up by one;
- browser: aiohttp sessions with 6 connections and a cookie jar, a page and 5
  assets every few seconds, on web (http) or tls (tls-terminate), living
  30-90 s; each checks all its answers come from one node;
- ws: WebSockets on web open 2-5 minutes, a message every 3 s checked echoed
  by the node the session's page came from; one in five ends by an abort;
- tls: a new TLS connection every 2 s (TLS 1.2 and TLS 1.3 threads) offering
  the previous session for resumption;
- tcp: long-lived and short echo connections on echo from 127.0.0.x sources;
- misbehave: one of: abort a head or a body (RST or FIN), abort a response,
  half-close after a request, garbage on each port, a slow head (408), a
  silent connection, a keep-alive left idle past idle_timeout, a partial or
  an idle TLS handshake, pipelined requests then close, a too large head.

Rates are low on purpose (the machine is shared): about 50 HTTP requests/s,
2 TLS reconnects/s, 4 TCP connections/s and a misbehaviour every 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import socket
import ssl
import struct
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

NODES = ("a", "b", "c")
HOST = "127.0.0.1"
PORT = {
    "web": {n: 21000 + i for i, n in enumerate(NODES, 1)},
    "tls": {n: 21010 + i for i, n in enumerate(NODES, 1)},
    "echo": {n: 21020 + i for i, n in enumerate(NODES, 1)},
}
IDLE_TIMEOUT = 60.0
WINDOW = 30.0


class Recorder:
    def __init__(self, path: Path) -> None:
        self.f = path.open("a")
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.ok: collections.Counter[tuple[str, str]] = collections.Counter()
        self.window = 0

    def t(self) -> float:
        return time.monotonic() - self.t0

    def event(self, kind: str, ev: str, **kw: Any) -> None:
        rec = {"t": round(self.t(), 3), "wall": time.time(), "kind": kind, "ev": ev, **kw}
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()

    def success(self, kind: str, what: str = "ok", n: int = 1) -> None:
        with self.lock:
            self.ok[(kind, what)] += n

    def flush_window(self) -> None:
        with self.lock:
            counts = {f"{k}/{w}": v for (k, w), v in sorted(self.ok.items())}
            self.ok.clear()
            rec = {"t": round(self.t(), 3), "wall": time.time(), "ev": "window",
                   "window": self.window, "counts": counts}  # fmt: skip
            self.window += 1
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()


def classify(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "broken_pipe"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "eof_in_response" if exc.partial else "eof_before_response"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused" if isinstance(exc.os_error, ConnectionRefusedError) else "connect_error"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server_disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated_body"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"oserror_{exc.errno}"
    if isinstance(exc, ssl.SSLError):
        return f"ssl_{exc.reason}"
    if isinstance(exc, OSError):
        return f"oserror_{exc.errno}"
    if isinstance(exc, RuntimeError) and "closed" in str(exc):
        return "write_after_close"  # uvloop: the peer reset or closed the connection
    return type(exc).__name__


# ---------------------------------------------------------------------- raw HTTP


class Resp:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


async def read_resp(reader: asyncio.StreamReader, head_only: bool = False) -> Resp:
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers.append((k.strip(), v.strip()))
        if 100 <= status < 200 and status != 101:
            continue
        break
    r = Resp(status, headers, b"")
    if head_only or status in (101, 204, 304):
        return r
    if (r.get("transfer-encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        r.body = b"".join(parts)
    elif r.get("content-length") is not None:
        r.body = await reader.readexactly(int(r.get("content-length") or 0))
    else:
        r.body = await reader.read()
    return r


def req(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def cookie_updates(resp: Resp, jar: dict[str, str]) -> bool:
    changed_home = False
    for sc in resp.all("set-cookie"):
        name, _, rest = sc.partition("=")
        value = rest.split(";", 1)[0]
        if name == "lbhome" and jar.get("lbhome") != value:
            changed_home = "lbhome" in jar
        jar[name] = value
    return changed_home


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def rst_close(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# ---------------------------------------------------------------------- clients


class Load:
    def __init__(self, rec: Recorder, seconds: float) -> None:
        self.rec = rec
        self.end = time.monotonic() + seconds
        self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.tls_ctx.check_hostname = False
        self.tls_ctx.verify_mode = ssl.CERT_NONE

    def running(self) -> bool:
        return time.monotonic() < self.end

    # -------------------------------------------------------------- pooled

    async def pooled(self, entry: str) -> None:
        kind = "pooled"
        sessions = [{"jar": {}, "node": None, "hits": 0} for _ in range(30)]
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        i = 0
        uses = 0
        while self.running():
            s: dict[str, Any] = sessions[i % len(sessions)]
            i += 1
            if conn is None:
                try:
                    conn = await asyncio.wait_for(
                        asyncio.open_connection(HOST, PORT["web"][entry]), 5
                    )
                    uses = 0
                except Exception as e:
                    self.rec.event(kind, classify(e), entry=entry, stage="connect")
                    await asyncio.sleep(1.0)
                    continue
            reader, writer = conn
            post = i % 10 == 0
            body = os.urandom(random.randint(5000, 50000)) if post else b""
            try:
                if post:
                    writer.write(req("POST", "/echo", {"Cookie": cookie_header(s["jar"])}, body))
                else:
                    writer.write(
                        req("GET", f"/pool/{entry}/{i % 30}", {"Cookie": cookie_header(s["jar"])})
                    )
                resp = await asyncio.wait_for(read_resp(reader), 15)
                uses += 1
            except Exception as e:
                # what a pooling proxy sees; it would retry an idempotent request once
                self.rec.event(kind, classify(e), entry=entry, stage="request", uses=uses,
                               home=s["node"])  # fmt: skip
                writer.close()
                conn = None
                await asyncio.sleep(0.3)
                continue
            if resp.status != 200:
                self.rec.event(kind, f"http_{resp.status}", entry=entry, home=s["node"],
                               post=post, body=resp.body[:200].decode("latin-1"))  # fmt: skip
            elif post:
                if resp.body != body:
                    self.rec.event(kind, "bad_echo", entry=entry, home=s["node"])
                elif s["node"] is not None and resp.get("x-node") != s["node"]:
                    self.rec.event(kind, "home_changed", entry=entry, old=s["node"],
                                   new=resp.get("x-node"), post=True)  # fmt: skip
                else:
                    self.rec.success(kind, "post")
            else:
                rehomed = cookie_updates(resp, s["jar"])
                data = json.loads(resp.body)
                node, hits = data["node"], data["session_hits"]
                if s["node"] is not None and node != s["node"]:
                    self.rec.event(kind, "home_changed", entry=entry, old=s["node"], new=node,
                                   new_cookie=rehomed)  # fmt: skip
                elif s["node"] is not None and hits != s["hits"] + 1:
                    self.rec.event(kind, "hits_mismatch", entry=entry, home=node,
                                   expected=s["hits"] + 1, got=hits)  # fmt: skip
                else:
                    self.rec.success(kind)
                s["node"], s["hits"] = node, hits
            if (resp.get("connection") or "").lower() == "close":
                self.rec.event(kind, "server_said_close", entry=entry, uses=uses)
                writer.close()
                conn = None
            await asyncio.sleep(0.1)
        if conn is not None:
            conn[1].close()

    # -------------------------------------------------------------- browsers

    async def browser_loop(self, svc: str) -> None:
        while self.running():
            await self.browser(svc, random.choice(NODES))
            await asyncio.sleep(random.uniform(0.5, 3))

    async def browser(self, svc: str, entry: str) -> None:
        kind = f"browser_{svc}"
        jar = aiohttp.CookieJar(unsafe=True)
        scheme = "https" if svc == "tls" else "http"
        connector = aiohttp.TCPConnector(
            limit=6, ssl=self.tls_ctx if svc == "tls" else False, force_close=False
        )
        timeout = aiohttp.ClientTimeout(total=15)
        life = time.monotonic() + random.uniform(30, 90)
        node_seen: str | None = None
        pages = 0
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=jar, timeout=timeout
        ) as http:

            async def get(path: str) -> str | None:
                url = f"{scheme}://{HOST}:{PORT[svc][entry]}{path}"
                for attempt in (1, 2):
                    try:
                        async with http.get(url) as r:
                            await r.read()
                            if r.status != 200:
                                self.rec.event(kind, f"http_{r.status}", entry=entry, path=path)
                                return None
                            return r.headers.get("X-Node")
                    except Exception as e:
                        self.rec.event(kind, classify(e), entry=entry, path=path,
                                       attempt=attempt, home=node_seen)  # fmt: skip
                        if isinstance(e, aiohttp.ClientConnectorError):
                            return None
                await asyncio.sleep(0)
                return None

            while self.running() and time.monotonic() < life:
                page = "/index.html" if svc == "tls" else "/page"
                assets = [f"/asset{i}.css" for i in range(1, 6)]
                first = await get(page)
                if first is None:
                    # the entry may be down or drained: a browser tries another address
                    entry = random.choice([n for n in NODES if n != entry])
                    await asyncio.sleep(1)
                    continue
                pages += 1
                if pages % 4 == 0:
                    assets.append("/big.bin" if svc == "tls" else "/bytes/1000000")
                nodes = [first, *await asyncio.gather(*(get(a) for a in assets))]
                got = {n for n in nodes if n is not None}
                if len(got) > 1 or (node_seen is not None and got and got != {node_seen}):
                    self.rec.event(kind, "home_changed", entry=entry, old=node_seen,
                                   new=sorted(got))  # fmt: skip
                else:
                    self.rec.success(kind, "page")
                if got:
                    node_seen = sorted(got)[0] if len(got) == 1 else node_seen
                await asyncio.sleep(random.uniform(2, 5))

    # -------------------------------------------------------------- websockets

    async def ws_loop(self, n: int) -> None:
        while self.running():
            await self.ws_once(random.choice(NODES))
            await asyncio.sleep(1)

    async def ws_once(self, entry: str) -> None:
        kind = "ws"
        jar = aiohttp.CookieJar(unsafe=True)
        base = f"http://{HOST}:{PORT['web'][entry]}"
        life = time.monotonic() + random.uniform(120, 300)
        abort = random.random() < 0.2
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            try:
                async with http.get(base + "/wspage", timeout=aiohttp.ClientTimeout(total=10)) as r:
                    home = r.headers.get("X-Node")
                    await r.read()
                ws = await http.ws_connect(
                    base + "/ws", timeout=aiohttp.ClientWSTimeout(ws_close=5), autoping=True
                )
            except Exception as e:
                self.rec.event(kind, classify(e), entry=entry, stage="open")
                await asyncio.sleep(2)
                return
            try:
                first = await asyncio.wait_for(ws.receive(), 10)
                if first.type != aiohttp.WSMsgType.TEXT or first.data != f"node={home}":
                    self.rec.event(kind, "wrong_home", entry=entry, home=home,
                                   got=str(first.data)[:80])  # fmt: skip
                i = 0
                while self.running() and time.monotonic() < life:
                    i += 1
                    await ws.send_str(f"m{i}")
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        self.rec.event(kind, f"ws_{msg.type.name.lower()}", entry=entry, home=home,
                                       sent=i, code=ws.close_code)  # fmt: skip
                        return
                    if msg.data != f"{home}:m{i}":
                        self.rec.event(kind, "bad_echo", entry=entry, home=home, got=msg.data[:80])
                        return
                    self.rec.success(kind, "msg")
                    await asyncio.sleep(3)
                if abort:
                    ws._response.connection.transport.abort()  # type: ignore[union-attr]
                    self.rec.success(kind, "aborted")
                else:
                    await ws.close()
                    self.rec.success(kind, "closed")
            except Exception as e:
                self.rec.event(kind, classify(e), entry=entry, home=home, stage="open-ws")
            finally:
                with contextlib.suppress(Exception):
                    await ws.close()

    # -------------------------------------------------------------- TLS reconnects

    def tls_thread(self, version: ssl.TLSVersion) -> None:
        kind = f"tls_{'13' if version == ssl.TLSVersion.TLSv1_3 else '12'}"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = version
        session = None
        last_wall = 0.0  # when the session offered next was got
        jar: dict[str, str] = {}
        while self.running():
            entry = random.choice(NODES)
            offered = session is not None
            try:
                with (
                    socket.create_connection((HOST, PORT["tls"][entry]), timeout=10) as raw,
                    ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s,
                ):
                    reused = s.session_reused
                    h = {"Cookie": cookie_header(jar)} if jar else {}
                    s.sendall(req("GET", "/api", {**h, "Connection": "close"}))
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                    session = s.session
                status = int(data.split(b" ", 2)[1]) if data else 0
                for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
                    if line.lower().startswith(b"set-cookie: lbhome="):
                        jar["lbhome"] = line.split(b"=", 1)[1].split(b";")[0].decode()
                if status != 200:
                    self.rec.event(kind, f"http_{status}", entry=entry)
                else:
                    self.rec.success(kind, "resumed" if reused else "full")
                    if offered and not reused:
                        # a session was offered and not taken: why is for the report
                        self.rec.event(kind, "not_resumed", entry=entry, prev_wall=last_wall)
                    last_wall = time.time()
            except Exception as e:
                self.rec.event(kind, classify(e), entry=entry)
                session = None
            time.sleep(1.0)

    # -------------------------------------------------------------- TCP echo

    async def tcp_long(self, src: str) -> None:
        kind = "tcp_long"
        while self.running():
            entry = random.choice(NODES)
            life = time.monotonic() + random.uniform(60, 180)
            node = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(HOST, PORT["echo"][entry], local_addr=(src, 0)), 5
                )
            except Exception as e:
                self.rec.event(kind, classify(e), entry=entry, stage="connect")
                await asyncio.sleep(2)
                continue
            try:
                node = (await asyncio.wait_for(reader.readline(), 10)).decode().strip()[5:]
                i = 0
                while self.running() and time.monotonic() < life:
                    i += 1
                    line = f"{src} line {i}\n".encode()
                    writer.write(line)
                    got = await asyncio.wait_for(reader.readexactly(len(line)), 10)
                    if got != line:
                        self.rec.event(kind, "bad_echo", entry=entry, home=node)
                        break
                    self.rec.success(kind, "line")
                    await asyncio.sleep(2)
                writer.write_eof()
                rest = await asyncio.wait_for(reader.read(), 10)
                if rest:
                    self.rec.event(kind, "bytes_after_eof", entry=entry)
                self.rec.success(kind, "closed")
            except Exception as e:
                self.rec.event(kind, classify(e), entry=entry, home=node, repr=repr(e)[:200])
            finally:
                writer.close()
            await asyncio.sleep(1)

    async def tcp_short_loop(self) -> None:
        kind = "tcp_short"
        homes: dict[str, tuple[str, float]] = {}
        while self.running():
            src = f"127.0.0.{random.randint(10, 49)}"
            entry = random.choice(NODES)
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(HOST, PORT["echo"][entry], local_addr=(src, 0)), 5
                )
                try:
                    node = (await asyncio.wait_for(reader.readline(), 10)).decode().strip()[5:]
                    payload = os.urandom(random.randint(10, 3000))
                    writer.write(payload)
                    got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
                    writer.write_eof()
                    rest = await asyncio.wait_for(reader.read(), 10)
                    if got != payload or rest:
                        self.rec.event(kind, "bad_echo", entry=entry, home=node)
                    elif src in homes and homes[src][0] != node:
                        self.rec.event(kind, "home_changed", src=src, old=homes[src][0], new=node,
                                       prev_wall=homes[src][1])  # fmt: skip
                    else:
                        self.rec.success(kind)
                    homes[src] = (node, time.time())
                finally:
                    writer.close()
            except Exception as e:
                self.rec.event(kind, classify(e), entry=entry, src=src)
            await asyncio.sleep(0.25)

    # -------------------------------------------------------------- misbehaving

    async def misbehave_loop(self) -> None:
        idle_running = [0]
        scenarios = [
            self.mb_head_abort,
            self.mb_body_abort,
            self.mb_response_abort,
            self.mb_half_close,
            self.mb_garbage_http,
            self.mb_garbage_tls,
            self.mb_garbage_tcp,
            self.mb_slow_head,
            self.mb_silent,
            self.mb_tls_partial,
            self.mb_tls_idle,
            self.mb_pipeline_close,
            self.mb_big_head,
            self.mb_ws_garbage,
        ]
        tasks: set[asyncio.Task[None]] = set()
        last_idle = 0.0
        while self.running():
            entry = random.choice(NODES)
            if time.monotonic() - last_idle > 40 and idle_running[0] < 3:
                last_idle = time.monotonic()
                sc = self.mb_idle_keepalive
            else:
                sc = random.choice(scenarios)

            async def one(sc: Any = sc, entry: str = entry) -> None:
                name = sc.__name__[3:]
                try:
                    if sc is self.mb_idle_keepalive:
                        idle_running[0] += 1
                    verdict = await sc(entry)
                    if verdict is None:
                        self.rec.success("misbehave", name)
                    else:
                        self.rec.event("misbehave", "unexpected", scenario=name, entry=entry,
                                       verdict=verdict)  # fmt: skip
                except Exception as e:
                    self.rec.event("misbehave", "error", scenario=name, entry=entry,
                                   error=classify(e), repr=repr(e)[:200])  # fmt: skip
                finally:
                    if sc is self.mb_idle_keepalive:
                        idle_running[0] -= 1

            t = asyncio.create_task(one())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            await asyncio.sleep(1.5)
        if tasks:
            await asyncio.wait(tasks, timeout=IDLE_TIMEOUT + 15)

    async def _open(
        self, svc: str, entry: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection(HOST, PORT[svc][entry]), 5)

    async def _close_verdict(self, reader: asyncio.StreamReader, within: float) -> str | None:
        """None if the peer closes (EOF or reset) within `within` s."""
        t0 = time.monotonic()
        try:
            while await asyncio.wait_for(reader.read(65536), within):
                pass
        except TimeoutError:
            return f"not closed within {within:.0f} s"
        except (ConnectionError, OSError):
            pass
        del t0
        return None

    async def mb_head_abort(self, entry: str) -> str | None:
        _reader, writer = await self._open("web", entry)
        writer.write(b"GET /abort HTTP/1.1\r\nHost: x\r\nCookie: a=")
        await asyncio.sleep(random.uniform(0, 0.3))
        rst_close(writer) if random.random() < 0.5 else writer.close()
        return None

    async def mb_body_abort(self, entry: str) -> str | None:
        _reader, writer = await self._open("web", entry)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
        writer.write(b"z" * random.randint(1, 60000))
        await writer.drain()
        await asyncio.sleep(random.uniform(0, 0.3))
        rst_close(writer) if random.random() < 0.5 else writer.close()
        return None

    async def mb_response_abort(self, entry: str) -> str | None:
        svc = random.choice(("web", "tls"))
        if svc == "tls":
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, PORT["tls"][entry], ssl=self.tls_ctx), 5
            )
            writer.write(req("GET", "/big.bin"))
        else:
            reader, writer = await self._open("web", entry)
            writer.write(req("GET", "/bytes/3000000"))
        await asyncio.wait_for(reader.readexactly(32768), 10)
        rst_close(writer)
        return None

    async def mb_half_close(self, entry: str) -> str | None:
        reader, writer = await self._open("web", entry)
        writer.write(req("GET", "/halfclose"))
        writer.write_eof()
        resp = await asyncio.wait_for(read_resp(reader), 10)
        if resp.status != 200:
            return f"status {resp.status}"
        verdict = await self._close_verdict(reader, 10)
        writer.close()
        return verdict

    async def mb_garbage_http(self, entry: str) -> str | None:
        reader, writer = await self._open("web", entry)
        writer.write(b"\x16\x03\x01" + os.urandom(random.randint(10, 400)) + b"\r\n\r\n")
        try:
            resp = await asyncio.wait_for(read_resp(reader), 10)
        except asyncio.IncompleteReadError:
            writer.close()
            return "closed without an answer"
        verdict = None if resp.status == 400 else f"status {resp.status}"
        verdict = verdict or await self._close_verdict(reader, 5)
        writer.close()
        return verdict

    async def mb_garbage_tls(self, entry: str) -> str | None:
        reader, writer = await self._open("tls", entry)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(100))
        verdict = await self._close_verdict(reader, 10)
        writer.close()
        return verdict

    async def mb_garbage_tcp(self, entry: str) -> str | None:
        reader, writer = await self._open("echo", entry)
        await asyncio.wait_for(reader.readline(), 10)
        junk = os.urandom(random.randint(1, 5000))
        writer.write(junk)
        got = await asyncio.wait_for(reader.readexactly(len(junk)), 10)
        rst_close(writer)
        return None if got == junk else "echo differs"

    async def mb_slow_head(self, entry: str) -> str | None:
        reader, writer = await self._open("web", entry)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        try:
            resp = await asyncio.wait_for(read_resp(reader), 15)
        except asyncio.IncompleteReadError:
            writer.close()
            return "closed without 408"
        took = time.monotonic() - t0
        writer.close()
        if resp.status != 408:
            return f"status {resp.status}"
        return None if took < 8 else f"408 after {took:.1f} s"

    async def mb_silent(self, entry: str) -> str | None:
        svc = random.choice(("web", "echo"))
        reader, writer = await self._open(svc, entry)
        if svc == "echo":
            # tcp: lb waits head_timeout for first bytes (client-ip needs none) -- the
            # node line comes from the application at once
            line = await asyncio.wait_for(reader.readline(), 10)
            rst_close(writer)
            return None if line.startswith(b"node=") else f"got {line[:40]!r}"
        t0 = time.monotonic()
        try:
            data = await asyncio.wait_for(reader.read(65536), 15)
        except TimeoutError:
            writer.close()
            return "silent connection not closed in 15 s"
        except ConnectionError:
            data = b""
        took = time.monotonic() - t0
        writer.close()
        if data and not data.startswith(b"HTTP/1.1 408"):
            return f"got {data[:40]!r}"
        return None if took < 8 else f"closed after {took:.1f} s"

    async def mb_idle_keepalive(self, entry: str) -> str | None:
        svc = random.choice(("web", "tls"))
        if svc == "tls":
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, PORT["tls"][entry], ssl=self.tls_ctx), 5
            )
            writer.write(req("GET", "/index.html"))
        else:
            reader, writer = await self._open("web", entry)
            writer.write(req("GET", "/idle"))
        resp = await asyncio.wait_for(read_resp(reader), 10)
        if resp.status != 200:
            writer.close()
            return f"status {resp.status}"
        t0 = time.monotonic()
        verdict = await self._close_verdict(reader, IDLE_TIMEOUT + 15)
        took = time.monotonic() - t0
        writer.close()
        if verdict:
            return f"{svc}: {verdict}"
        if took < IDLE_TIMEOUT - 2:
            return f"{svc}: closed after {took:.1f} s, before idle_timeout"
        return None

    async def mb_tls_partial(self, entry: str) -> str | None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.tls_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        with contextlib.suppress(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outgoing.read()
        reader, writer = await self._open("tls", entry)
        writer.write(hello[: random.randint(5, len(hello) - 1)])
        await asyncio.sleep(random.uniform(0, 0.5))
        if random.random() < 0.5:
            rst_close(writer)
            return None
        verdict = await self._close_verdict(reader, 10)  # head_timeout 5: closed
        writer.close()
        return verdict

    async def mb_tls_idle(self, entry: str) -> str | None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, PORT["tls"][entry], ssl=self.tls_ctx), 5
        )
        t0 = time.monotonic()
        try:
            data = await asyncio.wait_for(reader.read(65536), 15)
        except TimeoutError:
            writer.close()
            return "idle TLS connection not closed in 15 s"
        except (ConnectionError, ssl.SSLError):
            data = b""
        took = time.monotonic() - t0
        writer.close()
        if data and not data.startswith(b"HTTP/1.1 408"):
            return f"got {data[:40]!r}"
        return None if took < 8 else f"closed after {took:.1f} s"

    async def mb_pipeline_close(self, entry: str) -> str | None:
        _reader, writer = await self._open("web", entry)
        writer.write(req("GET", "/p1") + req("GET", "/bytes/200000") + req("GET", "/p3"))
        await asyncio.sleep(random.uniform(0, 0.05))
        rst_close(writer) if random.random() < 0.5 else writer.close()
        return None

    async def mb_big_head(self, entry: str) -> str | None:
        reader, writer = await self._open("web", entry)
        writer.write(req("GET", "/big", {"X-Big": "b" * 20000}))
        try:
            resp = await asyncio.wait_for(read_resp(reader), 10)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            writer.close()
            return "closed without 431"
        writer.close()
        return None if resp.status == 431 else f"status {resp.status}"

    async def mb_ws_garbage(self, entry: str) -> str | None:
        """A WebSocket upgrade, then junk instead of frames, then a close."""
        reader, writer = await self._open("web", entry)
        writer.write(req("GET", "/ws", {
            "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
        }))  # fmt: skip
        resp = await asyncio.wait_for(read_resp(reader, head_only=True), 10)
        if resp.status != 101:
            writer.close()
            return f"status {resp.status}"
        writer.write(os.urandom(200))
        verdict = await self._close_verdict(reader, 10)  # aiohttp closes on a bad frame
        writer.close()
        return verdict

    # -------------------------------------------------------------- run

    async def windows(self) -> None:
        while self.running():
            await asyncio.sleep(WINDOW)
            self.rec.flush_window()

    async def run(self) -> None:
        threads = [
            threading.Thread(target=self.tls_thread, args=(v,), daemon=True)
            for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
        ]
        for th in threads:
            th.start()
        jobs = [
            *(self.pooled(n) for n in NODES),
            *(self.browser_loop("web") for _ in range(3)),
            *(self.browser_loop("tls") for _ in range(3)),
            *(self.ws_loop(i) for i in range(8)),
            self.tcp_long("127.0.0.2"),
            self.tcp_long("127.0.0.3"),
            self.tcp_short_loop(),
            self.misbehave_loop(),
            self.windows(),
        ]
        await asyncio.gather(*jobs)
        for th in threads:
            th.join(timeout=20)
        self.rec.flush_window()
        self.rec.event("load", "done")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    args = ap.parse_args()
    rec = Recorder(args.work / "events.jsonl")
    load = Load(rec, args.seconds)
    try:
        import uvloop

        uvloop.run(load.run())
    except ImportError:
        asyncio.run(load.run())


if __name__ == "__main__":
    main()

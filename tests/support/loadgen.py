"""A bounded HTTP load generator for the fault tests: sessions, byte-exact transfers, probes.

It plays the clients of a farm: it knows the entry nodes' addresses, sends
real HTTP/1.1 over TCP and records what every request saw. Every run is
bounded in count and time and stops by itself (or, earlier, on SIGTERM, after
the requests in flight). It must stay free of lb imports: it is a client.

Modes (``python loadgen.py MODE --entries a=198.18.0.11:8080,b=... --out F``):

- ``steady``: N sessions, each with its own home cookie (taken from the first
  response's ``Set-Cookie``, replaced when a later response sets a new one),
  one request at a time per session, a target total rate spread over the
  entries round-robin. Every request is ``GET`` with ``Connection: close`` on
  a fresh connection (so each request is routed afresh); there is no retry,
  except that an entry refusing the connection (a node that is down) makes the
  client try the next entry, as a DNS round-robin client does; those entry
  retries are counted, they are not failures. Prints ``{"event": "ready"}``
  once every session has its cookie, then runs for ``--duration`` seconds.
- ``bytes``: large downloads (``GET /bytes/N``) and uploads (``POST /echo``)
  through given (entry, home) pairs with signed home cookies; each transfer
  is ``complete`` (right length and sha256), visibly aborted (``reset``,
  ``short_eof``: the connection closed before Content-Length bytes,
  ``status``: an error response, ``timeout``), or ``corrupted`` (a clean,
  complete-looking response with the wrong length or digest; must never be).
- ``agree``: for every session cookie of an earlier ``steady`` result, one
  request through every entry; repeats until every session lands on one node
  through all entries, or ``--until`` seconds pass.
- ``ready``: until every entry answers a request for every home (cookies given).

Each request record: ``t0``/``t1`` (wall clock), ``entry`` (the entry that
answered), ``tried`` (entries that refused or reset the connect first), ``session``, ``sent_home``
(the home named by the cookie sent), ``node`` (the backend's answer),
``status``, ``error`` (None, ``refused``, ``connect_timeout``,
``connect_error``, ``reset``, ``timeout``, ``eof_no_response``, ``truncated``,
``status``, ``bad_body``), ``new_home`` (home named by a new ``Set-Cookie``),
``local`` (the client's address and port: a failure can be found in a packet
capture), ``t_conn`` (when the connect completed), ``stage`` (what the request
was doing last: ``connect``, ``write``, ``head``, ``body``).
The full result is written as JSON to ``--out``; a summary line goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.backend import pattern_bytes, pattern_sha256  # noqa: E402

COOKIE_NAME = "lbhome"
MAX_HEAD = 64 * 1024
READ = 256 * 1024

Entry = tuple[str, str, int]  # name, host, port


def parse_entries(text: str) -> list[Entry]:
    out = []
    for part in text.split(","):
        name, _, addr = part.partition("=")
        host, _, port = addr.rpartition(":")
        out.append((name, host, int(port)))
    return out


def parse_map(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        if part:
            key, _, value = part.partition("=")
            out[key] = value
    return out


def cookie_home(value: str | None) -> str | None:
    """The node named by a home cookie value ``1.<kid>.<node>.<expires>.<mac>``."""
    if not value:
        return None
    parts = value.split(".")
    return parts[2] if len(parts) == 5 else None


@dataclass
class Head:
    status: int
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def set_cookie(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == "set-cookie" and v.split("=", 1)[0].strip() == name:
                return v.split("=", 1)[1].split(";", 1)[0].strip()
        return None


class Failure(Exception):
    """A request failed; `kind` is the error kind recorded."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


def parse_head(raw: bytes) -> Head:
    lines = raw.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise Failure("bad_body", f"bad status line {lines[0][:80]!r}") from exc
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
    return Head(status, headers)


async def read_head(reader: asyncio.StreamReader) -> Head:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise Failure("truncated" if exc.partial else "eof_no_response") from exc
    except asyncio.LimitOverrunError as exc:
        raise Failure("bad_body", "response head too long") from exc
    return parse_head(raw)


async def connect(
    entries: list[Entry],
    start: int,
    connect_timeout: float,
    tried: list[str],
    source: str | None = None,
) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to entry `start`, or the next ones while they refuse (names in `tried`).

    Only a connect that fails outright moves on to the next entry (refused, or
    reset before the connection existed, as when the entry's process just died);
    once connected, any failure is the request's failure.
    """
    n = len(entries)
    for i in range(n):
        name, host, port = entries[(start + i) % n]
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, limit=MAX_HEAD, local_addr=(source, 0) if source else None
                )
        except (ConnectionRefusedError, ConnectionResetError):
            # no connection was made (refused, or reset while the entry died): the
            # request never reached lb, so a client tries the next entry
            tried.append(name)
            continue
        except TimeoutError as exc:
            raise Failure("connect_timeout", name) from exc
        except OSError as exc:
            raise Failure("connect_error", f"{name}: {exc}") from exc
        return name, reader, writer
    raise Failure("refused", "every entry refused")


def close_writer(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()


# ----------------------------------------------------------------------------- steady


@dataclass
class Session:
    sid: int
    cookie: str | None = None
    requests: int = 0
    source: str | None = None  # the client address its connections come from

    @property
    def home(self) -> str | None:
        return cookie_home(self.cookie)


@dataclass
class Steady:
    entries: list[Entry]
    timeout: float
    connect_timeout: float
    records: list[dict[str, Any]] = field(default_factory=list)
    rr: int = 0

    async def request(self, session: Session, phase: str) -> dict[str, Any]:
        k = self.rr
        self.rr += 1
        session.requests += 1
        rec: dict[str, Any] = {
            "t0": time.time(),
            "phase": phase,
            "session": session.sid,
            "sent_home": session.home,
            "entry": None,
            "tried": [],
            "node": None,
            "status": None,
            "error": None,
            "detail": None,
            "new_home": None,
            "local": None,
            "t_conn": None,
            "stage": "connect",
        }
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                name, reader, writer = await connect(
                    self.entries, k, self.connect_timeout, rec["tried"], session.source
                )
                rec["entry"] = name
                rec["local"] = list(writer.get_extra_info("sockname") or ())[:2]
                rec["t_conn"] = time.time()
                rec["stage"] = "write"
                cookie = f"Cookie: {COOKIE_NAME}={session.cookie}\r\n" if session.cookie else ""
                writer.write(
                    (
                        f"GET /s/{session.sid}/{session.requests} HTTP/1.1\r\nHost: lb.test\r\n"
                        f"{cookie}Connection: close\r\n\r\n"
                    ).encode("latin-1")
                )
                await writer.drain()
                rec["stage"] = "head"
                head = await read_head(reader)
                rec["stage"] = "body"
                rec["status"] = head.status
                length = head.get("content-length")
                try:
                    body = await reader.readexactly(int(length)) if length else await reader.read()
                except asyncio.IncompleteReadError as exc:
                    raise Failure("truncated", f"{len(exc.partial)} of {length}") from exc
                new = head.set_cookie(COOKIE_NAME)
                if head.status != 200:
                    raise Failure("status", body[:100].decode("latin-1"))
                try:
                    rec["node"] = json.loads(body)["node"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise Failure("bad_body", body[:100].decode("latin-1")) from exc
                if new:
                    rec["new_home"] = cookie_home(new)
                    session.cookie = new
        except Failure as f:
            rec["error"], rec["detail"] = f.kind, f.detail or None
        except TimeoutError:
            rec["error"] = "timeout"
        except (ConnectionResetError, BrokenPipeError) as exc:
            rec["error"], rec["detail"] = "reset", str(exc)
        except OSError as exc:
            rec["error"], rec["detail"] = "reset", f"{type(exc).__name__}: {exc}"
        finally:
            if writer is not None:
                close_writer(writer)
        rec["t1"] = time.time()
        self.records.append(rec)
        return rec


async def run_steady(args: argparse.Namespace, stop: asyncio.Event) -> dict[str, Any]:
    st = Steady(parse_entries(args.entries), args.timeout, args.connect_timeout)
    sources = [s for s in args.sources.split(",") if s] if args.sources else []
    sessions = [
        Session(i, source=sources[i % len(sources)] if sources else None)
        for i in range(args.sessions)
    ]
    deadline = time.monotonic() + args.warmup_timeout
    sem = asyncio.Semaphore(20)

    async def warm(s: Session) -> None:
        while s.cookie is None and time.monotonic() < deadline and not stop.is_set():
            async with sem:
                rec = await st.request(s, "warmup")
            if s.cookie is None:
                await asyncio.sleep(0.2 if rec["error"] else 0.0)

    await asyncio.gather(*(warm(s) for s in sessions))
    missing = [s.sid for s in sessions if s.cookie is None]
    if missing:
        raise SystemExit(f"sessions without a home cookie after warmup: {missing[:10]}")
    ready_t = time.time()
    homes = dict(Counter(s.home for s in sessions))
    print(
        json.dumps({"event": "ready", "t": ready_t, "sessions": len(sessions), "homes": homes}),
        flush=True,
    )

    loop = asyncio.get_running_loop()
    interval = args.sessions / args.rate
    end = loop.time() + args.duration
    budget = [args.max_requests]

    async def drive(s: Session) -> None:
        nxt = loop.time() + interval * s.sid / args.sessions
        while not stop.is_set() and budget[0] > 0:
            wait = nxt - loop.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                if stop.is_set():
                    return
            if loop.time() >= end:
                return
            budget[0] -= 1
            await st.request(s, "load")
            nxt = max(nxt + interval, loop.time())

    await asyncio.gather(*(drive(s) for s in sessions))
    load = [r for r in st.records if r["phase"] == "load"]
    lat = sorted(r["t1"] - r["t0"] for r in load)
    summary = {
        "requests": len(load),
        "ok": sum(1 for r in load if r["error"] is None),
        "errors": dict(Counter(r["error"] for r in load if r["error"])),
        "entry_retries": sum(len(r["tried"]) for r in load),
        "rate": len(load) / max(1e-9, (max(r["t1"] for r in load) - ready_t)) if load else 0.0,
        "lat_p50": lat[len(lat) // 2] if lat else None,
        "lat_p99": lat[int(len(lat) * 0.99)] if lat else None,
        "lat_max": lat[-1] if lat else None,
    }
    return {
        "mode": "steady",
        "ready_t": ready_t,
        "end_t": time.time(),
        "summary": summary,
        "sessions": [{"id": s.sid, "cookie": s.cookie, "home": s.home} for s in sessions],
        "records": st.records,
    }


# ----------------------------------------------------------------------------- bytes


async def transfer(
    entry: Entry,
    home: str,
    cookie: str,
    kind: str,
    size: int,
    body: bytes,
    digest: str,
    timeout: float,
    connect_timeout: float,
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "t0": time.time(),
        "entry": entry[0],
        "home": home,
        "kind": kind,
        "size": size,
        "got": 0,
        "node": None,
        "status": None,
        "outcome": None,
        "detail": None,
    }
    writer: asyncio.StreamWriter | None = None
    sender: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(timeout):
            _, reader, writer = await connect([entry], 0, connect_timeout, [])
            cookie_line = f"Cookie: {COOKIE_NAME}={cookie}\r\n"
            if kind == "download":
                writer.write(
                    (
                        f"GET /bytes/{size} HTTP/1.1\r\nHost: lb.test\r\n{cookie_line}"
                        "Connection: close\r\n\r\n"
                    ).encode("latin-1")
                )
            else:
                writer.write(
                    (
                        f"POST /echo HTTP/1.1\r\nHost: lb.test\r\n{cookie_line}"
                        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
                    ).encode("latin-1")
                )
                w = writer

                async def send() -> None:
                    view = memoryview(body)
                    for off in range(0, len(view), READ):
                        w.write(view[off : off + READ])
                        await w.drain()

                sender = asyncio.ensure_future(send())
            await writer.drain()
            head = await read_head(reader)
            rec["status"] = head.status
            rec["node"] = head.get("x-node")
            length_text = head.get("content-length")
            if head.status != 200:
                raise Failure("status", str(head.status))
            if length_text is None or int(length_text) != size:
                raise Failure("corrupted", f"200 with Content-Length {length_text} for {size}")
            h = hashlib.sha256()
            got = 0
            while got < size:
                chunk = await reader.read(min(READ, size - got))
                if not chunk:
                    rec["got"] = got
                    raise Failure("short_eof", f"clean close after {got} of {size} bytes")
                h.update(chunk)
                got += len(chunk)
                rec["got"] = got
            if h.hexdigest() != digest:
                raise Failure("corrupted", f"all {size} bytes arrived, sha256 differs")
            if sender is not None:
                await sender
            extra = b""
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2.0):
                    extra = await reader.read(READ)
            if extra:
                raise Failure("corrupted", f"{len(extra)} bytes after the body")
            rec["outcome"] = "complete"
    except Failure as f:
        rec["outcome"], rec["detail"] = f.kind, f.detail or None
    except TimeoutError:
        rec["outcome"] = "timeout"
    except OSError as exc:
        rec["outcome"], rec["detail"] = "reset", f"{type(exc).__name__}: {exc}"
    finally:
        if sender is not None and not sender.done():
            sender.cancel()
        if sender is not None:
            with contextlib.suppress(BaseException):
                await sender
        if writer is not None:
            close_writer(writer)
    rec["t1"] = time.time()
    return rec


async def run_bytes(args: argparse.Namespace, stop: asyncio.Event) -> dict[str, Any]:
    entries = {e[0]: e for e in parse_entries(args.entries)}
    cookies = parse_map(args.cookies)
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    size = args.size
    body = pattern_bytes(size)
    digest = pattern_sha256(size)
    assert hashlib.sha256(body).hexdigest() == digest
    records: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + args.duration
    budget = [args.max_transfers]
    print(json.dumps({"event": "ready", "t": time.time()}), flush=True)

    async def worker(w: int) -> None:
        i = w
        while not stop.is_set() and loop.time() < end and budget[0] > 0:
            budget[0] -= 1
            entry, home = pairs[i % len(pairs)]
            kind = "download" if (i // len(pairs)) % 2 == 0 else "upload"
            rec = await transfer(
                entries[entry],
                home,
                cookies[home],
                kind,
                size,
                body,
                digest,
                args.timeout,
                args.connect_timeout,
            )
            records.append(rec)
            if rec["outcome"] != "complete":
                await asyncio.sleep(0.05)
            i += args.workers

    await asyncio.gather(*(worker(w) for w in range(args.workers)))
    return {
        "mode": "bytes",
        "summary": {
            "transfers": len(records),
            "outcomes": dict(Counter(r["outcome"] for r in records)),
            "bytes_complete": sum(r["size"] for r in records if r["outcome"] == "complete"),
        },
        "records": records,
    }


# ----------------------------------------------------------------------------- agree / ready


async def probe(
    entry: Entry, cookie: str | None, path: str, timeout: float
) -> tuple[str | None, str | None]:
    """One GET through `entry` with `cookie`; (node that answered, error kind)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            _, reader, writer = await connect([entry], 0, timeout, [])
            line = f"Cookie: {COOKIE_NAME}={cookie}\r\n" if cookie else ""
            writer.write(
                (f"GET {path} HTTP/1.1\r\nHost: lb.test\r\n{line}Connection: close\r\n\r\n").encode(
                    "latin-1"
                )
            )
            await writer.drain()
            head = await read_head(reader)
            length = head.get("content-length")
            body = await reader.readexactly(int(length)) if length else await reader.read()
            if head.status != 200:
                return None, f"status {head.status}"
            return str(json.loads(body)["node"]), None
    except Failure as f:
        return None, f.kind
    except TimeoutError:
        return None, "timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
        return None, type(exc).__name__
    finally:
        if writer is not None:
            close_writer(writer)


async def gather_limited(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def run_agree(args: argparse.Namespace, stop: asyncio.Event) -> dict[str, Any]:
    entries = parse_entries(args.entries)
    sessions = json.loads(Path(args.sessions_from).read_text())["sessions"]
    cookies = [(s["id"], s["cookie"]) for s in sessions]
    start = time.time()
    rounds = []
    last: list[dict[str, Any]] = []
    while True:
        t0 = time.time()
        jobs: list[Callable[[], Awaitable[Any]]] = []
        for sid, cookie in cookies:
            for e in entries:
                jobs.append(functools.partial(probe, e, cookie, f"/agree/{sid}", args.timeout))
        answers = await gather_limited(jobs, 50)
        disagreements = []
        for i, (sid, cookie) in enumerate(cookies):
            got = answers[i * len(entries) : (i + 1) * len(entries)]
            nodes = {
                e[0]: (node or f"error:{err}") for e, (node, err) in zip(entries, got, strict=True)
            }
            if len(set(nodes.values())) != 1 or any(n is None for n, _ in got):
                disagreements.append(
                    {"session": sid, "cookie_home": cookie_home(cookie), "nodes": nodes}
                )
        t1 = time.time()
        rounds.append({"t0": t0, "t1": t1, "disagreements": len(disagreements)})
        last = disagreements
        if not disagreements:
            return {
                "mode": "agree",
                "agreed": True,
                "t_agreed": t1,
                "start": start,
                "rounds": rounds,
                "sessions": len(cookies),
            }
        if time.time() - start > args.until or stop.is_set():
            return {
                "mode": "agree",
                "agreed": False,
                "t_agreed": None,
                "start": start,
                "rounds": rounds,
                "sessions": len(cookies),
                "disagreements": last,
            }
        await asyncio.sleep(args.interval)


async def run_ready(args: argparse.Namespace, stop: asyncio.Event) -> dict[str, Any]:
    entries = parse_entries(args.entries)
    cookies = parse_map(args.cookies)
    todo = {(e, home) for e in entries for home in cookies}
    deadline = time.monotonic() + args.timeout
    while todo and time.monotonic() < deadline and not stop.is_set():
        items = sorted(todo)
        jobs: list[Callable[[], Awaitable[Any]]] = [
            functools.partial(probe, e, cookies[h], "/__ready", 1.0) for e, h in items
        ]
        answers = await gather_limited(jobs, 20)
        for (e, h), (node, _err) in zip(items, answers, strict=True):
            if node == h:
                todo.discard((e, h))
        if todo:
            await asyncio.sleep(0.1)
    return {
        "mode": "ready",
        "ready": not todo,
        "missing": sorted(f"{e[0]}->{h}" for e, h in todo),
        "t": time.time(),
    }


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--entries", required=True, help="name=host:port,...")
    common.add_argument("--out", required=True, type=Path, help="where the JSON result goes")
    common.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    common.add_argument("--connect-timeout", type=float, default=3.0)
    p = sub.add_parser("steady", parents=[common])
    p.add_argument("--sessions", type=int, default=60)
    p.add_argument("--sources", default="", help="client addresses, one per session in turn")
    p.add_argument("--rate", type=float, default=300.0, help="total requests per second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load after ready")
    p.add_argument("--max-requests", type=int, default=100_000)
    p.add_argument("--warmup-timeout", type=float, default=20.0)
    p = sub.add_parser("bytes", parents=[common])
    p.add_argument("--cookies", required=True, help="home=cookie-value,...")
    p.add_argument("--pairs", required=True, help="entry:home,...")
    p.add_argument("--size", type=int, default=8 << 20)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--max-transfers", type=int, default=10_000)
    p = sub.add_parser("agree", parents=[common])
    p.add_argument("--sessions-from", required=True, help="a steady result file")
    p.add_argument("--until", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=0.2)
    p = sub.add_parser("ready", parents=[common])
    p.add_argument("--cookies", required=True, help="home=cookie-value,...")
    args = parser.parse_args(argv)
    runners = {"steady": run_steady, "bytes": run_bytes, "agree": run_agree, "ready": run_ready}

    async def go() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await runners[args.mode](args, stop)

    result = asyncio.run(go())
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(args.out)
    summary = {k: v for k, v in result.items() if k not in ("records", "sessions", "rounds")}
    print(json.dumps({"event": "done", **summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

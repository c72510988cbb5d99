"""The soak's application behind one node: aiohttp HTTP + WebSocket, and a TCP echo.

A real framework (aiohttp, as `lb demo` uses) plays the `web` service's
application; the TCP echo plays the `echo` service's. It imports nothing of lb.

HTTP (aiohttp, keep-alive 75 s as aiohttp's default):
- ``GET /healthz``      "ok"
- ``GET /ws``           WebSocket: first a text ``node=<name>``, then every text message
  echoed as ``<name>:<message>``
- ``GET /bytes/N``      N bytes (``x``), streamed in 64 KiB pieces
- ``POST /echo``        the body back
- anything else         JSON ``{"node", "session_hits", "path"}`` for the session of
  the ``demo_sid`` cookie (set when absent or unknown), as lb's demo application

TCP: on connect ``node=<name>\\n``, then everything echoed until EOF.

    python bench/soak/app.py --node a --http 21301 --tcp 21321
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal

from aiohttp import WSMsgType, web

SESSION_COOKIE = "demo_sid"


def make_app(node: str) -> web.Application:
    sessions: dict[str, int] = {}

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"X-Node": node})

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(heartbeat=None)
        await sock.prepare(request)
        await sock.send_str(f"node={node}")
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str(f"{node}:{msg.data}")
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
        return sock

    async def data(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        resp = web.StreamResponse(headers={"X-Node": node})
        resp.content_length = n
        await resp.prepare(request)
        piece = b"x" * 65536
        while n > 0:
            await resp.write(piece[: min(n, len(piece))])
            n -= min(n, len(piece))
        await resp.write_eof()
        return resp

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body, headers={"X-Node": node})

    async def hit(request: web.Request) -> web.Response:
        sid = request.cookies.get(SESSION_COOKIE)
        fresh = sid is None or sid not in sessions
        if sid is None or fresh:
            sid = sid or secrets.token_hex(12)
            sessions[sid] = 0
        sessions[sid] += 1
        resp = web.json_response(
            {"node": node, "session_hits": sessions[sid], "path": request.path},
            headers={"X-Node": node},
        )
        if fresh:
            resp.set_cookie(SESSION_COOKIE, sid, path="/", httponly=True, samesite="Lax")
        return resp

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ws", ws)
    app.router.add_get("/bytes/{n:[0-9]+}", data)
    app.router.add_post("/echo", echo)
    app.router.add_route("*", "/{tail:.*}", hit)
    return app


async def tcp_echo(node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write(f"node={node}\n".encode())
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True)
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--tcp", type=int, required=True)
    args = p.parse_args()
    runner = web.AppRunner(make_app(args.node), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.http).start()
    server = await asyncio.start_server(
        lambda r, w: tcp_echo(args.node, r, w), "127.0.0.1", args.tcp
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())

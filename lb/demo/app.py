"""The demo application that `lb demo` runs behind each of its nodes.

A tiny aiohttp app that keeps a per-session hit counter in memory, so a
session that always reaches its home shows a counter going 1, 2, 3 and the
name of the node that holds it. It is an example application, not part of the
load balancer: it imports nothing of lb and knows nothing about homing.
"""

from __future__ import annotations

import secrets

from aiohttp import web

SESSION_COOKIE = "demo_sid"
NODE_HEADER = "X-Demo-Node"

_NODE_KEY = web.AppKey("node", str)
_SESSIONS_KEY = web.AppKey("sessions", dict[str, int])


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok", headers={NODE_HEADER: request.app[_NODE_KEY]})


async def _hit(request: web.Request) -> web.Response:
    sessions = request.app[_SESSIONS_KEY]
    sid = request.cookies.get(SESSION_COOKIE)
    fresh = sid is None or sid not in sessions
    if sid is None or fresh:
        sid = sid or secrets.token_hex(12)
        sessions[sid] = 0
    sessions[sid] += 1
    body = {
        "node": request.app[_NODE_KEY],
        "session_hits": sessions[sid],
        "path": request.path,
    }
    response = web.json_response(body)
    if fresh:
        response.set_cookie(SESSION_COOKIE, sid, path="/", httponly=True, samesite="Lax")
    return response


def make_app(node: str) -> web.Application:
    """The demo application of node `node`: `GET /healthz` and a JSON hit counter on any path.

    `GET /healthz` answers "ok" with the node's name in the X-Demo-Node header;
    any other request answers {"node", "session_hits", "path"} for the session
    named by the `demo_sid` cookie, which is set when absent or unknown.
    """
    app = web.Application()
    app[_NODE_KEY] = node
    app[_SESSIONS_KEY] = {}
    app.router.add_get("/healthz", _healthz)
    app.router.add_route("*", "/{tail:.*}", _hit)
    return app

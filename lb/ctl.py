"""`lb ctl`: talk to a running node's admin listener (status, members, drain, undrain, health,
metrics).

The address is `--admin HOST:PORT`, or the node's `admin` in a farm file
(`--config FILE [--node NAME]`, else the file $LB_CONFIG names, as in the
container image; the file also gives the token). The token is
`--token`, else $LB_ADMIN_TOKEN, else the farm file's `admin_token`.
`health` is what a container's HEALTHCHECK runs: 0 when /healthz says the node
serves; with no admin listener configured it falls back to a TCP connect to the
node's link listener (`forward`).

A blocking client for a command line: it must not be imported by a node.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any, TextIO

from lb.config import Address, load_config, parse_address, select_node
from lb.errors import ConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
TIMEOUT = 5.0
COMMANDS = ("status", "members", "drain", "undrain", "health", "metrics")


class CtlError(Exception):
    """The node could not be asked, or said no."""


def _connectable(address: Address) -> tuple[str, int]:
    host = address.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, address.port


def call(target: tuple[str, int], token: str | None, method: str, path: str) -> tuple[int, bytes]:
    """One request to the admin listener: (status, body); CtlError when it cannot be made."""
    conn = http.client.HTTPConnection(*target, timeout=TIMEOUT)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CtlError(
            f"cannot reach the admin listener at {target[0]}:{target[1]}: {exc}"
        ) from None
    finally:
        conn.close()


def _json(target: tuple[str, int], token: str | None, method: str, path: str) -> Any:
    status, body = call(target, token, method, path)
    if status == 401:
        if token:
            raise CtlError(
                "the admin listener refused the token (from --token, $LB_ADMIN_TOKEN or the"
                " farm file's admin_token; a node reads admin_token when it starts)"
            )
        raise CtlError("the admin listener wants a token: --token, $LB_ADMIN_TOKEN or admin_token")
    if status != 200:
        raise CtlError(f"{method} {path}: HTTP {status}: {body[:200].decode(errors='replace')}")
    return json.loads(body)


def _print_status(s: dict[str, Any], out: TextIO) -> None:
    apps = ", ".join(f"{k} {v}" for k, v in sorted(s.get("apps", {}).items())) or "-"
    print(f"node      {s['node']} (farm {s['farm']}, {s['workers']} worker(s))", file=out)
    print(f"draining  {'yes' if s['draining'] else 'no'}", file=out)
    print(f"apps      {apps}", file=out)
    print(f"load      {s['load']} in progress (requests, tcp flows, tunnels)", file=out)
    print(f"directory {s['directory']['entries']} entries", file=out)
    print(f"live      {', '.join(s['live'])}", file=out)
    _print_members(
        {m: {"state": st, "load": s["loads"].get(m)} for m, st in s["members"].items()}, out
    )


def _print_members(members: dict[str, Any], out: TextIO) -> None:
    width = max([len("member"), *(len(m) for m in members)])
    print(f"{'member':<{width}}  {'state':<9}  load", file=out)
    for name, info in members.items():
        load = "-" if info.get("load") is None else str(info["load"])
        print(f"{name:<{width}}  {info.get('state') or 'unknown':<9}  {load}", file=out)


def run(
    command: str,
    admin: str | None,
    token: str | None,
    config_path: str | None,
    node_name: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """`lb ctl COMMAND`; the exit status."""
    token = token or os.environ.get("LB_ADMIN_TOKEN") or None
    if admin is None and config_path is None:
        config_path = os.environ.get("LB_CONFIG") or None
    forward: Address | None = None
    try:
        if admin is not None:
            target = _connectable(parse_address(admin))
        elif config_path is not None:
            me = select_node(load_config(config_path), node_name)
            forward = me.forward
            if me.admin is None:
                if command != "health":
                    print(f"lb ctl: node {me.name!r} has no admin listener (admin = ...)", file=err)
                    return EXIT_USAGE
                target = ("", 0)
            else:
                target = _connectable(me.admin)
                token = token or me.admin_token
        else:
            print("lb ctl: give --admin HOST:PORT or --config FILE (or set LB_CONFIG)", file=err)
            return EXIT_USAGE
    except ValueError as exc:
        print(f"lb ctl: --admin: {exc}", file=err)
        return EXIT_USAGE
    except ConfigError as exc:
        for key, message in exc.errors:
            print(f"lb ctl: {config_path}: {key}: {message}", file=err)
        return EXIT_USAGE
    try:
        if command == "health":
            if target == ("", 0):
                assert forward is not None
                with socket.create_connection(_connectable(forward), timeout=TIMEOUT):
                    print("ok (link listener accepts; no admin listener configured)", file=out)
                return EXIT_OK
            status, body = call(target, None, "GET", "/healthz")
            print(body.decode(errors="replace").strip(), file=out)
            return EXIT_OK if status == 200 else EXIT_FAILED
        if command == "metrics":
            status, body = call(target, token, "GET", "/metrics")
            if status != 200:
                raise CtlError(f"GET /metrics: HTTP {status}")
            out.write(body.decode())
            return EXIT_OK
        if command == "status":
            _print_status(_json(target, token, "GET", "/api/status"), out)
        elif command == "members":
            _print_members(_json(target, token, "GET", "/api/members"), out)
        elif command in ("drain", "undrain"):
            answer = _json(target, token, "POST", f"/{command}")
            print(f"draining: {'yes' if answer['draining'] else 'no'}", file=out)
        else:  # pragma: no cover - argparse allows only COMMANDS
            return EXIT_USAGE
    except (CtlError, OSError) as exc:
        print(f"lb ctl {command}: {exc}", file=err)
        return EXIT_FAILED
    return EXIT_OK


__all__ = ["COMMANDS", "CtlError", "call", "run"]

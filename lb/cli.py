"""The `lb` command line: run a node, check a farm file, run the demo, list extractors, ctl.

This module only parses arguments, loads the configuration and hands over to
lb.node / lb.demo / lb.ctl; it holds no load-balancing logic and opens no sockets.
Every command returns an exit status: 0 ok, 1 check-config found errors,
2 usage or configuration error when starting.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from lb import __version__
from lb.config import FarmConfig, NodeConfig, load_config, select_node
from lb.errors import ConfigError

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
DEFAULT_DEMO_PORT_BASE = 18000


def _port_base(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1024 <= value <= 65000:
        raise argparse.ArgumentTypeError(f"{value} is out of range 1024 .. 65000")
    return value


def build_kind() -> str:
    """ "compiled with mypyc" when the per-request modules are compiled (setup.py), else
    "pure Python"."""
    # where the module would load from, without importing it (nor llhttp with it)
    spec = importlib.util.find_spec("lb.wire.http1")
    origin = spec.origin if spec is not None else None
    return "pure Python" if origin is None or origin.endswith(".py") else "compiled with mypyc"


CTL_ACTIONS = ("status", "members", "drain", "undrain", "health", "metrics")
"""What `lb ctl` does; `lb --help` lists them all from here."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lb",
        description="Session-homing load balancer: every node of a farm routes each "
        "session to its home node.",
    )
    parser.add_argument("--version", action="version", version=f"lb {__version__} ({build_kind()})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run one node of a farm")
    run.add_argument("--config", metavar="FILE", help="the farm file (TOML; default: $LB_CONFIG)")
    run.add_argument(
        "--node", metavar="NAME", help="the node to run as (default: $LB_NODE, or the only node)"
    )
    # set by the node's supervisor when it starts its workers (workers > 1)
    run.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--bus-fd", type=int, default=None, help=argparse.SUPPRESS)
    # ... and when it restarts one while an operator's drain is in force
    run.add_argument("--drained", action="store_true", help=argparse.SUPPRESS)

    check = sub.add_parser("check-config", help="validate a farm file and list every error")
    check.add_argument(
        "file", nargs="?", metavar="FILE", help="the farm file (TOML; default: $LB_CONFIG)"
    )
    check.add_argument(
        "--node",
        metavar="NAME",
        help="also check that this node exists and can start here: its host names "
        "resolve, its link certificates can be read (by the user running the check)",
    )

    demo = sub.add_parser("demo", help="run a 3-node farm with demo applications on loopback")
    demo.add_argument(
        "--port-base",
        type=_port_base,
        default=DEFAULT_DEMO_PORT_BASE,
        metavar="N",
        help=f"first port of the block the demo uses (default {DEFAULT_DEMO_PORT_BASE})",
    )

    sub.add_parser("extractors", help="list the installed extractor kinds")

    certs = sub.add_parser(
        "certs",
        help="make the farm CA (if missing) and node certificates for mutual TLS links",
        description="Writes ca.pem/ca.key (once) and <node>.pem/<node>.key into DIR. Run it "
        "again for a node to renew its certificate (the CA stays), then SIGHUP that node.",
    )
    certs.add_argument("dir", metavar="DIR", help="the certificate directory (farm.link_certs)")
    certs.add_argument("--farm", required=True, metavar="NAME", help="the farm name (farm.name)")
    certs.add_argument(
        "--nodes", required=True, metavar="A,B,...", help="node names to issue certificates for"
    )
    certs.add_argument(
        "--days", type=int, default=30, metavar="N", help="node certificate validity (default 30)"
    )
    ctl = sub.add_parser(
        "ctl",
        help="ask a running node's admin listener: " + ", ".join(CTL_ACTIONS),
        description="Talks to the admin listener of a node (nodes.<name>.admin in the farm "
        "file). The token is --token, else $LB_ADMIN_TOKEN, else the farm file's admin_token.",
    )
    where = ctl.add_mutually_exclusive_group()
    where.add_argument("--admin", metavar="HOST:PORT", help="the admin listener's address")
    where.add_argument(
        "--config",
        metavar="FILE",
        help="take the address and token from this farm file (default: $LB_CONFIG)",
    )
    ctl.add_argument("--node", metavar="NAME", help="with --config: the node (default: $LB_NODE)")
    ctl.add_argument(
        "--token",
        metavar="T",
        help="the bearer token (default: $LB_ADMIN_TOKEN, else with --config the node's "
        "admin_token or admin_token_file)",
    )
    ctl.add_argument(
        "action",
        choices=CTL_ACTIONS,
        help="status, members, drain, undrain, health (exit 0 when the node serves), metrics",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command: str | None = args.command
    try:
        if command in ("run", "check-config"):
            path = (args.config if command == "run" else args.file) or os.environ.get("LB_CONFIG")
            if not path:
                print(f"lb {command}: give the farm file (or set LB_CONFIG)", file=sys.stderr)
                return EXIT_USAGE
            if command == "run":
                return _run(path, args.node, args.worker, args.bus_fd, args.drained)
            return _check_config(path, args.node)
        if command == "demo":
            return _demo(args.port_base)
        if command == "extractors":
            return _extractors(sys.stdout)
        if command == "certs":
            return _certs(args.dir, args.farm, args.nodes, args.days)
        if command == "ctl":
            from lb.ctl import run as ctl_run

            return ctl_run(
                args.action, args.admin, args.token, args.config, args.node, sys.stdout, sys.stderr
            )
    except KeyboardInterrupt:
        return 130
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _print_errors(source: str, exc: ConfigError, out: TextIO) -> None:
    print(f"{source}: {len(exc.errors)} error(s)", file=out)
    for key, message in exc.errors:
        print(f"  {key}: {message}", file=out)


def _load(path: str, node: str | None) -> tuple[FarmConfig, NodeConfig]:
    config = load_config(path)
    return config, select_node(config, node)


def _run(
    path: str,
    node_name: str | None,
    worker: int | None = None,
    bus_fd: int | None = None,
    drained: bool = False,
) -> int:
    try:
        config, node = _load(path, node_name)
    except ConfigError as exc:
        _print_errors(path, exc, sys.stderr)
        if worker is not None:
            # a worker re-reads the file its supervisor read: a failure here holds for
            # every restart, so it is a failed start, which stops the node
            from lb.node.workers import EXIT_START_FAILED

            return EXIT_START_FAILED
        return EXIT_USAGE
    from lb.node.runner import run_node

    return run_node(config, node, worker, bus_fd, drained)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def certificate_warnings(config: FarmConfig, now: float) -> list[tuple[str, str]]:
    """The tls-terminate certificates expired at `now` (seconds since the epoch), keyed
    as the farm file names them (lb.config.tlsfiles.expiry_warning)."""
    from lb.config.tlsfiles import expiry_warning

    found: list[tuple[str, str]] = []
    for i, service in enumerate(config.services.values()):
        if service.tls_cert is not None:
            warning = expiry_warning(service.tls_cert, now)
            if warning is not None:
                found.append((f"services[{i}].tls.cert", warning))
    return found


HTTP_KINDS = frozenset(("home-cookie", "uri-path", "query-param", "cookie", "uri-regex", "header"))
"""Built-in kinds that read the parsed request head: no match on a tcp or
tls-passthrough service, where there is none."""
CLIENT_HELLO_KINDS = frozenset(("tls-ticket", "tls-session-id", "tls-psk", "sni"))
"""Built-in kinds that read a ClientHello: no match on an http or tls-terminate
service (lb ends the TLS of the latter; its chain sees the requests)."""


def extractor_warnings(config: FarmConfig) -> list[tuple[str, str]]:
    """Built-in extractors a service's protocol never gives anything to read: they
    never match, so the chain goes on without them (a kind that is valid, in the
    wrong service)."""
    found: list[tuple[str, str]] = []
    for i, service in enumerate(config.services.values()):
        http = service.protocol in ("http", "tls-terminate")
        for j, spec in enumerate(service.extractors):
            if spec.kind in HTTP_KINDS and not http:
                why = f"reads an HTTP request; protocol {service.protocol!r} has none to read"
            elif spec.kind in CLIENT_HELLO_KINDS and http:
                why = (
                    f"reads a TLS ClientHello; the chain of protocol {service.protocol!r} sees none"
                )
            else:
                continue
            found.append(
                (f"services[{i}].extractors[{j}].kind", f"{spec.kind!r} {why}, so it never matches")
            )
    return found


def _check_config(path: str, node_name: str | None) -> int:
    try:
        config = load_config(path)
        node = select_node(config, node_name) if node_name is not None else None
        if node is not None:
            from lb.node.preflight import node_problems

            problems = node_problems(config, node)
            if problems:
                raise ConfigError(problems)
    except ConfigError as exc:
        _print_errors(path, exc, sys.stderr)
        return EXIT_CHECK_FAILED
    for key, message in certificate_warnings(config, time.time()) + extractor_warnings(config):
        print(f"warning: {key}: {message}", file=sys.stderr)
    line = (
        f"ok: farm {config.name!r}, "
        f"{_plural(len(config.nodes), 'node')} ({', '.join(config.nodes)}), "
        f"{_plural(len(config.services), 'service')} ({', '.join(config.services)})"
    )
    if node is not None:
        line += f"; node {node.name!r}"
    print(line)
    return EXIT_OK


DEMO_EXTRA_MISSING = (
    "lb demo: the demo needs aiohttp, which a node does not; install the demo extra: "
    "pip install 'lb[demo]'"
)


def _demo(port_base: int) -> int:
    try:
        from lb.demo.run import main as demo_main
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "aiohttp":
            raise
        print(DEMO_EXTRA_MISSING, file=sys.stderr)
        return EXIT_USAGE
    return demo_main(port_base)


def _extractors(out: TextIO) -> int:
    from lb.extract.registry import available, load_errors

    kinds = {
        name: info.distribution or "(unknown distribution)" for name, info in available().items()
    }
    broken = load_errors()
    if not kinds and not broken:
        print("no extractors installed", file=out)
        return EXIT_OK
    width = max(len(kind) for kind in [*kinds, *broken])
    for kind, dist in sorted(kinds.items()):
        print(f"{kind:<{width}}  {dist}", file=out)
    for kind, reason in sorted(broken.items()):
        print(f"{kind:<{width}}  unusable: {reason}", file=out)
    return EXIT_OK


def _certs(directory: str, farm: str, nodes_arg: str, days: int) -> int:
    from pathlib import Path

    from lb.certs import ensure_certs

    nodes = [n.strip() for n in nodes_arg.split(",") if n.strip()]
    if not nodes or days < 1:
        print("lb certs: give at least one node name and --days >= 1", file=sys.stderr)
        return EXIT_USAGE
    done = ensure_certs(Path(directory), farm, nodes, days=days)
    if done.ca_created:
        print(f"made the farm CA of {farm!r}: {done.directory / 'ca.pem'} (keep ca.key safe)")
    for node in done.nodes:
        print(f"issued {done.directory / (node + '.pem')} for node {node!r}, valid {days} days")
    return EXIT_OK

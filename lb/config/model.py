"""The farm configuration as values: what `parse_config` returns and lb.node reads.

Frozen dataclasses (FarmConfig, NodeConfig, ServiceConfig, Limits, Address,
ExtractorSpec) and `parse_address`. Each field of Limits carries its own
range, ordering and meaning as field metadata, so the farm file's [limits]
table is validated from the dataclass itself; `Limits.membership_timing` is
the one place membership timers are derived from the limits.

Pure values: no file, socket, clock or TLS here.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from lb.cluster.membership import Timing
from lb.config.spec import (
    INVALID,
    REQUIRED,
    Ctx,
    Derived,
    Key,
    Mark,
    did_you_mean,
    integer,
    seconds,
)
from lb.errors import ConfigError

__all__ = [
    "Address",
    "ExtractorSpec",
    "FarmConfig",
    "Limits",
    "NodeConfig",
    "ServiceConfig",
    "is_loopback",
    "is_wildcard",
    "limit_keys",
    "parse_address",
    "unknown_node",
]

LIMIT_KEY = "lb.config.key"
"""The field-metadata entry of a Limits field: its Key (range, ordering, meaning)."""

_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


@dataclass(frozen=True, slots=True)
class Address:
    """A host and a TCP port; an IPv6 host is stored without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def _count(lo: int, hi: int, doc: str) -> dict[str, Key]:
    """Metadata of an integer limit in lo .. hi."""
    return {LIMIT_KEY: Key("", integer(lo, hi), doc=doc)}


def _secs(
    hi: float,
    doc: str,
    *,
    derive: Callable[[Ctx], Any] | None = None,
    above: str | None = None,
    below: str | None = None,
    why: str = "",
    zero: bool = False,
) -> dict[str, Key]:
    """Metadata of a limit in seconds, > 0 (>= 0 with ``zero``) and <= hi, maybe ordered
    against others."""
    default = Derived(derive) if derive is not None else REQUIRED
    key = Key(
        "", seconds(hi, zero=zero), default, doc, above=above, below=below, why=why, unit=" s"
    )
    return {LIMIT_KEY: key}


@functools.cache
def limit_keys() -> tuple[Key, ...]:
    """The [limits] table's keys, read from the fields of Limits and their metadata."""
    keys = []
    for f in fields(Limits):
        key: Key = f.metadata[LIMIT_KEY]
        default = key.default if isinstance(key.default, Derived) else f.default
        keys.append(replace(key, name=f.name, default=default))
    return tuple(keys)


def _derive_suspect(ctx: Ctx) -> float | Mark:
    """suspect_after when omitted: after a few lost PINGs, well before the death sentence."""
    if INVALID in (ctx.row["ping_interval"], ctx.row["dead_after"]):
        return INVALID
    ping: float = ctx.row["ping_interval"]
    dead: float = ctx.row["dead_after"]
    suspect = max(dead * 0.4, ping * 2)
    return suspect if suspect < dead else (ping + dead) / 2


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on bytes, time and flows; every field has a safe default.

    The metadata of each field is its [limits] key: range, ordering and meaning.
    """

    head_bytes: int = field(
        default=16384,
        metadata=_count(
            1024,
            1048576,
            "bytes read while looking for an identifier; over it an http client gets 431",
        ),
    )
    head_timeout: float = field(
        default=5.0,
        metadata=_secs(300.0, "seconds to get them; then 408 (http) or a close (tcp)"),
    )
    connect_timeout: float = field(
        default=3.0,
        metadata=_secs(300.0, "connecting to the local application or a peer"),
    )
    pending_timeout: float = field(
        default=5.0,
        metadata=_secs(300.0, "a forwarded flow not VERIFIED by its home in time is reset (502)"),
    )
    idle_timeout: float = field(
        default=300.0,
        metadata=_secs(86400.0, "a client connection silent both ways this long is closed (FIN)"),
    )
    pool_idle_timeout: float = field(
        default=10.0,
        metadata=_secs(
            3600.0,
            "an idle pooled connection to an application (or flow to a home) is closed; "
            "keep it below the application's keep-alive timeout",
        ),
    )
    max_flows: int = field(
        default=10000,
        metadata=_count(1, 1000000, "pending + forward flows per link end; over it: 503"),
    )
    flow_window: int = field(
        default=262144,
        metadata=_count(16384, 16777216, "per-flow credit window on links (bytes)"),
    )
    ping_interval: float = field(
        default=0.5,
        metadata=_secs(60.0, "the period of link PINGs"),
    )
    dead_after: float = field(
        default=2.5,
        metadata=_secs(
            600.0,
            "a peer nobody has heard of for this long is dead",
            above="ping_interval",
            why="a peer is declared dead only after several pings went unanswered",
        ),
    )
    max_connections: int = field(
        default=20000,
        metadata=_count(1, 1000000, "client connections per node; over it: 503"),
    )
    drain_timeout: float = field(
        default=30.0,
        metadata=_secs(86400.0, "how long a draining node waits for its flows to end"),
    )
    suspect_after: float = field(
        default=1.0,
        metadata=_secs(
            600.0,
            "a peer silent this long is suspected and probed through other nodes; "
            "when omitted: derived from ping_interval and dead_after",
            derive=_derive_suspect,
            above="ping_interval",
            below="dead_after",
        ),
    )
    directory_entries: int = field(
        default=100000,
        metadata=_count(16, 10000000, "entries of the directory of learned sessions"),
    )
    directory_ttl: float = field(
        default=3600.0,
        metadata=_secs(31536000.0, "lifetime of a directory entry"),
    )
    register_timeout: float = field(
        default=0.05,
        metadata=_secs(
            5.0,
            "a response naming a new learned session waits at most this long for the "
            "key's owners to acknowledge it; then it goes out anyway (counted)",
        ),
    )
    lookup_timeout: float = field(
        default=0.1,
        metadata=_secs(
            5.0,
            "an entry asks a key's owners about a session it does not know; no answer "
            "this soon places a new session",
        ),
    )
    directory_pending: int = field(
        default=10000,
        metadata=_count(
            1,
            1000000,
            "registrations (and, separately, lookups) waiting for owners per process; "
            "beyond it they complete at once",
        ),
    )
    health_interval: float = field(
        default=2.0,
        metadata=_secs(3600.0, "seconds between TCP connect checks of each local application"),
    )
    health_fall: int = field(
        default=3,
        metadata=_count(1, 100, "failed checks or application connects in a row that mark it down"),
    )
    health_rise: int = field(
        default=2,
        metadata=_count(1, 100, "passed checks in a row that mark a down application up"),
    )

    app_down_rehome_after: float = field(
        default=30.0,
        metadata=_secs(
            86400.0,
            "a node whose application stays down this long gives its sessions up: "
            "they are re-homed (until then they wait for it)",
        ),
    )
    isolated_rehome_after: float = field(
        default=30.0,
        metadata=_secs(
            86400.0,
            "a node that hears none of its peers (3 or more nodes) re-homes the sessions "
            "of the peers it lost, or never heard since it started, only after this long "
            "(until then they wait for them)",
        ),
    )
    dead_rehome_after: float = field(
        default=0.0,
        metadata=_secs(
            86400.0,
            "the sessions of a peer that stops without leaving (it died, or was "
            "restarted: a node stopped with this above 0 does not say LEFT) wait for it "
            "this long before they are re-homed; their requests wait for its link "
            "meanwhile (0: re-homed as soon as it is declared dead)",
            zero=True,
        ),
    )
    placement_hold: float = field(
        default=10.0,
        metadata=_secs(
            3600.0,
            "new sessions from one client address (IPv6: /64) go to the home its first "
            "one got for this long, so a browser's parallel connections agree",
        ),
    )
    placement_entries: int = field(
        default=16384,
        metadata=_count(
            0,
            10000000,
            "client addresses held by placement_hold per process; beyond it a new "
            "session is placed by a hash of its address alone",
        ),
    )

    def membership_timing(self) -> Timing:
        """The failure detector's timers, derived from these limits (the only place)."""
        return Timing(
            ping_interval=self.ping_interval,
            suspect_after=self.suspect_after,
            dead_after=self.dead_after,
            probe_interval=self.ping_interval,
            recheck_interval=max(self.dead_after, 2 * self.ping_interval),
            app_down_rehome_after=self.app_down_rehome_after,
            isolated_rehome_after=self.isolated_rehome_after,
            dead_rehome_after=self.dead_rehome_after,
        )


@dataclass(frozen=True, slots=True)
class ExtractorSpec:
    """One extractor of a service's chain: its kind and its options (without `kind`)."""

    kind: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    name: str
    protocol: str  # http | tcp | tls-passthrough | tls-terminate
    extractors: tuple[ExtractorSpec, ...]
    tls_cert: Path | None = None  # tls-terminate: the listener's certificate chain (PEM)
    tls_key: Path | None = None  # tls-terminate: its private key (PEM)
    app_tls: bool = False  # tls-terminate: speak TLS to the local application
    app_tls_ca: Path | None = None  # verify the application's certificate against this CA
    # the client's address to the application (issue 10), docs/client-address.md
    forwarded_headers: bool = True  # http, tls-terminate: X-Forwarded-For/-Proto, Forwarded
    # new sessions of one client address agree on a home (off when every client arrives
    # from one address: a NAT, an L4 balancer without PROXY v2, Docker's userland proxy)
    client_affinity: bool = True
    app_proxy_protocol: str = "off"  # tcp, tls-passthrough: "v2" writes a PROXY v2 header
    accept_proxy_from: tuple[str, ...] = ()  # CIDRs whose connections start with PROXY v2
    tls_tickets: str = "farm"  # tls-terminate: "farm" (shared key), "worker", "off"

    @property
    def speaks_http(self) -> bool:
        """The stream lb reads is HTTP/1.1 (cleartext, or after lb terminated TLS)."""
        return self.protocol in ("http", "tls-terminate")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    forward: Address  # the link listener this node binds
    weight: int
    # service -> its client-facing addresses, in the farm file's order (one or more); the
    # first is the primary: the home address of a flow's connection reference
    listen: Mapping[str, tuple[Address, ...]]
    apps: Mapping[str, Address]
    workers: int = 1  # processes sharing the node's ports (SO_REUSEPORT); "auto" = usable CPUs
    advertise: Address | None = None  # where peers connect, when not `forward` (NAT, containers)
    admin: Address | None = None  # the admin listener (metrics, JSON API, farm page); None: off
    admin_token: str | None = field(default=None, repr=False)  # bearer token for the admin API

    @property
    def forward_advertised(self) -> Address:
        """The address peers connect to for a link to this node."""
        return self.forward if self.advertise is None else self.advertise


@dataclass(frozen=True, slots=True)
class FarmConfig:
    name: str
    secret: bytes = field(repr=False)
    previous_secrets: tuple[bytes, ...] = field(repr=False)
    link_security: str
    cookie_name: str
    cookie_ttl: int
    limits: Limits
    log_level: str
    log_format: str
    services: Mapping[str, ServiceConfig]
    nodes: Mapping[str, NodeConfig]
    source: str
    link_certs: Path | None = None  # link_security = "mtls": ca.pem, <node>.pem, <node>.key
    access_log: bool = True  # [log] access_log = "on": one line per HTTP request
    access_log_sample: float = 1.0  # [log] the share of requests written, 0.0 .. 1.0
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For/Forwarded are kept

    def node(self, name: str) -> NodeConfig:
        """The node called `name`; ConfigError keyed "--node" when the farm has none."""
        try:
            return self.nodes[name]
        except KeyError:
            raise unknown_node("--node", name, self.nodes) from None


def unknown_node(key: str, name: str, nodes: Mapping[str, NodeConfig]) -> ConfigError:
    """The error for a node name the farm does not have, keyed `key`."""
    message = f"unknown node {name!r}; the farm has: {', '.join(nodes)}"
    close = did_you_mean(name, list(nodes))
    if close is not None:
        message += f" (did you mean {close!r}?)"
    return ConfigError([(key, message)])


def parse_address(text: str) -> Address:
    """Parse "host:port" or "[v6]:port"; ValueError with a readable message otherwise.

    IP hosts are normalised (e.g. "::0001" -> "::1"); a host name is lower-cased.
    """
    if not text:
        raise ValueError("empty address; expected host:port or [v6]:port")
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"{text!r} is not [v6]:port")
        host_text, port_text = text[1:end], text[end + 2 :]
        try:
            host = str(ipaddress.IPv6Address(host_text))
        except ValueError:
            raise ValueError(f"{host_text!r} in brackets is not an IPv6 address") from None
    else:
        host_text, sep, port_text = text.rpartition(":")
        if not sep or not host_text:
            raise ValueError(f"{text!r} is not host:port (e.g. 127.0.0.1:8080 or [::1]:8080)")
        if ":" in host_text:
            raise ValueError(f"an IPv6 address needs brackets: [{host_text}]:{port_text}")
        host = _host(host_text)
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"port {port_text!r} is not a number 1..65535")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 1..65535")
    return Address(host, port)


def _host(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    if text.replace(".", "").isdigit() or not _HOSTNAME.fullmatch(text):
        raise ValueError(f"{text!r} is neither an IPv4 address nor a host name")
    return text.lower()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::")

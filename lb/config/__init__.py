"""The farm configuration: one TOML file describes every node of a farm.

`load_config` reads and parses the file, `parse_config` validates an already
parsed mapping, and `select_node` picks the node this process runs as.
Validation collects every problem as a (key, message) pair and raises one
ConfigError listing them all, so an operator fixes a file in one pass.

This module reads the config file (and a secret file it names) and the LB_NODE
environment variable; it never touches sockets, never imports asyncio and
never reads the clock.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lb.errors import ConfigError
from lb.extract.api import ExtractorContext
from lb.extract.registry import build_chain

__all__ = [
    "Address",
    "ExtractorSpec",
    "FarmConfig",
    "Limits",
    "NodeConfig",
    "ServiceConfig",
    "load_config",
    "parse_address",
    "parse_config",
    "select_node",
]

MIN_SECRET_BYTES = 32
NODE_ENV = "LB_NODE"

_FARM_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SERVICE_NAME = _FARM_NAME
_NODE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")  # RFC 9110 token
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)

_PROTOCOLS = ("http", "tcp", "tls-passthrough", "tls-terminate")
_DEFAULT_EXTRACTORS: dict[str, tuple[str, ...]] = {
    "http": ("home-cookie",),
    "tcp": ("client-ip",),
    "tls-passthrough": ("tls-ticket", "tls-session-id"),
    "tls-terminate": ("home-cookie",),
}
_LOG_LEVELS = ("debug", "info", "warning", "error")
_LOG_FORMATS = ("console", "json")

_TOP_KEYS = ("farm", "limits", "log", "services", "nodes")
_FARM_KEYS = (
    "name",
    "secret",
    "secret_file",
    "previous_secrets",
    "link_security",
    "cookie_name",
    "cookie_ttl",
)
_LOG_KEYS = ("level", "format")
_SERVICE_KEYS = ("name", "protocol", "extractors", "tls", "app_tls", "app_tls_ca")
_TLS_KEYS = ("cert", "key")
_NODE_KEYS = ("name", "forward", "weight", "listen", "apps", "workers")
MAX_WORKERS = 256


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True, slots=True)
class Address:
    """A host and a TCP port; an IPv6 host is stored without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on bytes, time and flows; every field has a safe default."""

    head_bytes: int = 16384
    head_timeout: float = 5.0
    connect_timeout: float = 3.0
    pending_timeout: float = 5.0
    idle_timeout: float = 300.0
    max_flows: int = 10000
    flow_window: int = 262144
    ping_interval: float = 0.5
    dead_after: float = 2.5
    max_connections: int = 20000
    drain_timeout: float = 30.0
    suspect_after: float = 1.0  # when omitted: derived from ping_interval and dead_after
    directory_entries: int = 100000
    directory_ttl: float = 3600.0


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

    @property
    def speaks_http(self) -> bool:
        """The stream lb reads is HTTP/1.1 (cleartext, or after lb terminated TLS)."""
        return self.protocol in ("http", "tls-terminate")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    forward: Address
    weight: int
    listen: Mapping[str, Address]
    apps: Mapping[str, Address]
    workers: int = 1  # processes sharing the node's ports (SO_REUSEPORT); "auto" = CPUs


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

    def node(self, name: str) -> NodeConfig:
        """The node called `name`; ConfigError keyed "--node" when the farm has none."""
        try:
            return self.nodes[name]
        except KeyError:
            raise ConfigError([("--node", _unknown_node_message(name, self.nodes))]) from None


def _unknown_node_message(name: str, nodes: Mapping[str, NodeConfig]) -> str:
    message = f"unknown node {name!r}; the farm has: {', '.join(nodes)}"
    close = difflib.get_close_matches(name, list(nodes), n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message


# --------------------------------------------------------------------------- public functions


def load_config(path: str | Path) -> FarmConfig:
    """Read, parse and validate the farm file at `path`.

    An unreadable file or a TOML syntax error is reported under the file's path
    as key; the syntax error message carries the line and column.
    """
    source = str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [(source, f"cannot read the config file: {exc.strerror or exc}")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [(source, f"the config file is not valid UTF-8 (byte offset {exc.start})")]
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(source, f"invalid TOML: {exc}")]) from None
    return parse_config(data, base_dir=p.resolve().parent, source=source)


def parse_config(
    data: Mapping[str, Any], *, base_dir: Path, source: str = "<memory>"
) -> FarmConfig:
    """Validate a parsed TOML document; raise one ConfigError listing every problem.

    `base_dir` is where a relative `farm.secret_file` is looked up.
    """
    v = _Validator(base_dir)
    config = v.farm_config(data, source)
    if v.errors or config is None:
        raise ConfigError(v.errors)
    return config


def select_node(
    config: FarmConfig, name: str | None, *, environ: Mapping[str, str] | None = None
) -> NodeConfig:
    """The node this process runs as.

    `name` (from --node) wins; else the LB_NODE environment variable; else the
    only node of a one-node farm. Anything else is a ConfigError naming the
    choices.
    """
    env = os.environ if environ is None else environ
    if name is not None:
        return config.node(name)
    from_env = env.get(NODE_ENV, "")
    if from_env:
        if from_env in config.nodes:
            return config.nodes[from_env]
        raise ConfigError([(NODE_ENV, _unknown_node_message(from_env, config.nodes))])
    if len(config.nodes) == 1:
        return next(iter(config.nodes.values()))
    raise ConfigError(
        [
            (
                "--node",
                f"the farm has {len(config.nodes)} nodes ({', '.join(config.nodes)}); "
                f"choose one with --node NAME or the {NODE_ENV} environment variable",
            )
        ]
    )


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


# --------------------------------------------------------------------------- validation


def _type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::")


_MISSING: Any = object()


class _Validator:
    """Walks the document once, recording every problem instead of stopping at the first."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.errors: list[tuple[str, str]] = []
        # names of the declared services (valid or not); None when [[services]] is unusable
        self.service_names: list[str] | None = None

    def error(self, key: str, message: str) -> None:
        self.errors.append((key, message))

    # ---- generic helpers

    def table(self, value: Any, key: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.error(key, f"must be a table, not {_type_name(value)}")
        return None

    def known_keys(self, tbl: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for k in tbl:
            if k not in allowed:
                message = "unknown key"
                close = difflib.get_close_matches(str(k), allowed, n=1)
                if close:
                    message += f"; did you mean {close[0]!r}?"
                else:
                    message += f"; expected one of: {', '.join(allowed)}"
                self.error(f"{prefix}{k}", message)

    def string(
        self,
        tbl: Mapping[str, Any],
        name: str,
        key: str,
        *,
        default: str | None = None,
        pattern: re.Pattern[str] | None = None,
        pattern_text: str = "",
        choices: tuple[str, ...] = (),
    ) -> str | None:
        value = tbl.get(name, _MISSING)
        if value is _MISSING:
            if default is None:
                self.error(key, "required")
            return default
        if not isinstance(value, str):
            self.error(key, f"must be a string, not {_type_name(value)}")
            return None
        if choices and value not in choices:
            self.error(key, f"{value!r} is not one of: {', '.join(choices)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(key, f"{value!r} must match {pattern_text}")
            return None
        return value

    def integer(
        self, tbl: Mapping[str, Any], name: str, key: str, default: int, lo: int, hi: int
    ) -> int | None:
        value = tbl.get(name, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be an integer, not {_type_name(value)}")
            return None
        if not lo <= value <= hi:
            self.error(key, f"{value} is out of range {lo} .. {hi}")
            return None
        return value

    def seconds(
        self, tbl: Mapping[str, Any], name: str, key: str, default: float, hi: float
    ) -> float | None:
        value = tbl.get(name, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, f"must be a number of seconds, not {_type_name(value)}")
            return None
        number = float(value)
        if not math.isfinite(number) or not 0 < number <= hi:
            self.error(key, f"{value} seconds is out of range: must be > 0 and <= {hi:g}")
            return None
        return number

    def secret_value(self, value: Any, key: str) -> bytes | None:
        if not isinstance(value, str):
            self.error(key, f"must be a string, not {_type_name(value)}")
            return None
        return self.check_secret(value.encode("utf-8"), key)

    def check_secret(self, secret: bytes, key: str) -> bytes | None:
        if len(secret) < MIN_SECRET_BYTES:
            self.error(
                key,
                f"the secret is {len(secret)} bytes; at least {MIN_SECRET_BYTES} are required. "
                'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"',
            )
            return None
        return secret

    # ---- sections

    def farm_config(self, data: Mapping[str, Any], source: str) -> FarmConfig | None:
        if not isinstance(data, Mapping):
            self.error("<document>", f"must be a table, not {_type_name(data)}")
            return None
        self.known_keys(data, _TOP_KEYS, "")

        farm = self.farm(data)
        limits = self.limits(data.get("limits", {}))
        log = self.log(data.get("log", {}))
        cookie_name = farm.get("cookie_name") if farm else None
        services = self.services(data.get("services", _MISSING), cookie_name or "lbhome")
        nodes = self.nodes(data.get("nodes", _MISSING))

        if self.errors or farm is None or limits is None or log is None:
            return None
        if services is None or nodes is None:
            return None
        return FarmConfig(
            name=farm["name"],
            secret=farm["secret"],
            previous_secrets=farm["previous_secrets"],
            link_security=farm["link_security"],
            cookie_name=farm["cookie_name"],
            cookie_ttl=farm["cookie_ttl"],
            limits=limits,
            log_level=log[0],
            log_format=log[1],
            services=services,
            nodes=nodes,
            source=source,
        )

    def farm(self, data: Mapping[str, Any]) -> dict[str, Any] | None:
        raw = data.get("farm", _MISSING)
        if raw is _MISSING:
            self.error("farm", "required: the [farm] table is missing")
            return None
        tbl = self.table(raw, "farm")
        if tbl is None:
            return None
        self.known_keys(tbl, _FARM_KEYS, "farm.")
        out: dict[str, Any] = {}
        out["name"] = self.string(
            tbl, "name", "farm.name", pattern=_FARM_NAME, pattern_text="[A-Za-z0-9._-]{1,64}"
        )
        out["secret"] = self.farm_secret(tbl)

        previous: list[bytes] = []
        raw_prev = tbl.get("previous_secrets", [])
        if not isinstance(raw_prev, list):
            self.error("farm.previous_secrets", f"must be an array, not {_type_name(raw_prev)}")
        else:
            for i, item in enumerate(raw_prev):
                secret = self.secret_value(item, f"farm.previous_secrets[{i}]")
                if secret is not None:
                    previous.append(secret)
        out["previous_secrets"] = tuple(previous)

        out["link_security"] = self.link_security(tbl)
        out["cookie_name"] = self.string(
            tbl,
            "cookie_name",
            "farm.cookie_name",
            default="lbhome",
            pattern=_TOKEN,
            pattern_text="HTTP token characters (letters, digits, !#$%&'*+-.^_`|~), 1..128",
        )
        out["cookie_ttl"] = self.integer(tbl, "cookie_ttl", "farm.cookie_ttl", 86400, 60, 31536000)
        return out

    def farm_secret(self, tbl: Mapping[str, Any]) -> bytes | None:
        has_secret = "secret" in tbl
        has_file = "secret_file" in tbl
        if has_secret and has_file:
            self.error("farm.secret", "set exactly one of secret and secret_file, not both")
            return None
        if not has_secret and not has_file:
            self.error(
                "farm.secret",
                "required: set secret (or secret_file); every node of the farm uses the same one",
            )
            return None
        if has_secret:
            return self.secret_value(tbl["secret"], "farm.secret")
        value = tbl["secret_file"]
        if not isinstance(value, str) or not value:
            self.error("farm.secret_file", f"must be a file path, not {_type_name(value)}")
            return None
        path = self.base_dir / value
        try:
            content = path.read_bytes()
        except OSError as exc:
            self.error("farm.secret_file", f"cannot read {str(path)!r}: {exc.strerror or exc}")
            return None
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        return self.check_secret(content, "farm.secret_file")

    def link_security(self, tbl: Mapping[str, Any]) -> str | None:
        value = tbl.get("link_security", _MISSING)
        if value is _MISSING:
            self.error(
                "farm.link_security",
                "required: links between nodes are not protected by TLS in this version, "
                "so plaintext links must be chosen explicitly: set "
                'link_security = "plaintext" and keep the forward addresses on a trusted network',
            )
            return None
        if value == "tls":
            self.error(
                "farm.link_security",
                "mutual TLS links are not implemented yet; "
                'set link_security = "plaintext" explicitly',
            )
            return None
        if value != "plaintext":
            self.error(
                "farm.link_security",
                f'{value!r} is not supported; the only value this version supports is "plaintext"',
            )
            return None
        return "plaintext"

    def limits(self, raw: Any) -> Limits | None:
        tbl = self.table(raw, "limits")
        if tbl is None:
            return None
        d = Limits()
        ints: dict[str, tuple[int, int]] = {
            "head_bytes": (1024, 1048576),
            "max_flows": (1, 1000000),
            "flow_window": (16384, 16777216),
            "max_connections": (1, 1000000),
            "directory_entries": (16, 10000000),
        }
        floats: dict[str, float] = {
            "head_timeout": 300.0,
            "connect_timeout": 300.0,
            "pending_timeout": 300.0,
            "idle_timeout": 86400.0,
            "ping_interval": 60.0,
            "dead_after": 600.0,
            "drain_timeout": 86400.0,
            "suspect_after": 600.0,
            "directory_ttl": 31536000.0,
        }
        names = tuple(f.name for f in fields(Limits))
        self.known_keys(tbl, names, "limits.")
        values: dict[str, Any] = {}
        ok = True
        for name in names:
            key = f"limits.{name}"
            default = getattr(d, name)
            got: Any
            if name in ints:
                lo, hi = ints[name]
                got = self.integer(tbl, name, key, default, lo, hi)
            else:
                got = self.seconds(tbl, name, key, default, floats[name])
            ok = ok and got is not None
            values[name] = got
        ping, dead = values["ping_interval"], values["dead_after"]
        if "suspect_after" not in tbl and ping is not None and dead is not None:
            # between the heartbeat and the death sentence: suspected after a few lost PINGs
            suspect = max(dead * 0.4, ping * 2)
            values["suspect_after"] = suspect if suspect < dead else (ping + dead) / 2
        suspect = values["suspect_after"]
        if (
            suspect is not None
            and ping is not None
            and dead is not None
            and dead > ping
            and not ping < suspect < dead
        ):
            self.error(
                "limits.suspect_after",
                f"must lie between limits.ping_interval ({ping:g} s) and "
                f"limits.dead_after ({dead:g} s)",
            )
            ok = False
        if (
            values["dead_after"] is not None
            and values["ping_interval"] is not None
            and values["dead_after"] <= values["ping_interval"]
        ):
            self.error(
                "limits.dead_after",
                f"must be greater than limits.ping_interval ({values['ping_interval']:g} s); "
                "a peer is declared dead only after several pings went unanswered",
            )
            ok = False
        return Limits(**values) if ok else None

    def log(self, raw: Any) -> tuple[str, str] | None:
        tbl = self.table(raw, "log")
        if tbl is None:
            return None
        self.known_keys(tbl, _LOG_KEYS, "log.")
        level = self.string(tbl, "level", "log.level", default="info", choices=_LOG_LEVELS)
        fmt = self.string(tbl, "format", "log.format", default="console", choices=_LOG_FORMATS)
        if level is None or fmt is None:
            return None
        return level, fmt

    def array_of_tables(self, raw: Any, key: str, what: str) -> list[Any] | None:
        if raw is _MISSING:
            self.error(key, f"required: at least one [[{key}]] table ({what})")
            return None
        if not isinstance(raw, list):
            self.error(key, f"must be an array of tables ([[{key}]]), not {_type_name(raw)}")
            return None
        if not raw:
            self.error(key, f"at least one [[{key}]] table is required ({what})")
            return None
        return raw

    def services(self, raw: Any, cookie_name: str) -> dict[str, ServiceConfig] | None:
        items = self.array_of_tables(raw, "services", "what the farm serves")
        if items is None:
            return None
        out: dict[str, ServiceConfig] = {}
        first_index: dict[str, int] = {}
        self.service_names = []
        ok = True
        for i, item in enumerate(items):
            prefix = f"services[{i}]"
            tbl = self.table(item, prefix)
            if tbl is None:
                ok = False
                continue
            self.known_keys(tbl, _SERVICE_KEYS, f"{prefix}.")
            name = self.string(
                tbl,
                "name",
                f"{prefix}.name",
                pattern=_SERVICE_NAME,
                pattern_text="[A-Za-z0-9._-]{1,64}",
            )
            protocol = self.string(tbl, "protocol", f"{prefix}.protocol", choices=_PROTOCOLS)
            extractors = self.extractors(tbl, prefix, protocol, cookie_name)
            tls = self.service_tls(tbl, prefix, protocol)
            if name is not None and name in first_index:
                self.error(
                    f"{prefix}.name",
                    f"duplicate service name {name!r} (also services[{first_index[name]}])",
                )
                ok = False
                continue
            if name is not None:
                first_index[name] = i
                self.service_names.append(name)
            if name is None or protocol is None or extractors is None or tls is None:
                ok = False
                continue
            out[name] = ServiceConfig(name, protocol, extractors, *tls)
        return out if ok else None

    def service_tls(
        self, tbl: Mapping[str, Any], prefix: str, protocol: str | None
    ) -> tuple[Path | None, Path | None, bool, Path | None] | None:
        """The TLS settings of a service: checked, and the files loaded once to prove them."""
        raw = tbl.get("tls", _MISSING)
        app_tls = tbl.get("app_tls", False)
        app_ca_raw = tbl.get("app_tls_ca", _MISSING)
        ok = True
        if not isinstance(app_tls, bool):
            self.error(f"{prefix}.app_tls", f"must be true or false, not {_type_name(app_tls)}")
            ok = False
        if protocol != "tls-terminate":
            for name in ("tls", "app_tls", "app_tls_ca"):
                if name in tbl:
                    self.error(f"{prefix}.{name}", "only a tls-terminate service takes this key")
                    ok = False
            return (None, None, False, None) if ok else None
        if raw is _MISSING:
            self.error(
                f"{prefix}.tls",
                'required for tls-terminate: tls = { cert = "cert.pem", key = "key.pem" }',
            )
            return None
        tls = self.table(raw, f"{prefix}.tls")
        if tls is None:
            return None
        self.known_keys(tls, _TLS_KEYS, f"{prefix}.tls.")
        cert = self.file_path(tls.get("cert", _MISSING), f"{prefix}.tls.cert")
        key = self.file_path(tls.get("key", _MISSING), f"{prefix}.tls.key")
        app_ca = None
        if app_ca_raw is not _MISSING:
            app_ca = self.file_path(app_ca_raw, f"{prefix}.app_tls_ca")
            ok = ok and app_ca is not None
        if cert is None or key is None or not ok:
            return None
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            self.error(f"{prefix}.tls", f"cannot load the certificate and key: {exc}")
            return None
        if app_ca is not None:
            try:
                ssl.create_default_context(cafile=str(app_ca))
            except (ssl.SSLError, OSError) as exc:
                self.error(f"{prefix}.app_tls_ca", f"cannot load the CA file: {exc}")
                return None
        return cert, key, bool(app_tls), app_ca

    def file_path(self, value: Any, key: str) -> Path | None:
        if value is _MISSING:
            self.error(key, "required: a file path (relative to the config file)")
            return None
        if not isinstance(value, str) or not value:
            self.error(key, f"must be a file path, not {_type_name(value)}")
            return None
        path = self.base_dir / value
        if not path.is_file():
            self.error(key, f"no such file: {str(path)!r}")
            return None
        return path

    def extractors(
        self, tbl: Mapping[str, Any], prefix: str, protocol: str | None, cookie_name: str
    ) -> tuple[ExtractorSpec, ...] | None:
        key = f"{prefix}.extractors"
        raw = tbl.get("extractors", _MISSING)
        if raw is _MISSING:
            if protocol is None:
                return None
            specs: list[ExtractorSpec] = [
                ExtractorSpec(kind, {}) for kind in _DEFAULT_EXTRACTORS[protocol]
            ]
        else:
            if not isinstance(raw, list):
                self.error(key, f"must be an array of tables, not {_type_name(raw)}")
                return None
            if not raw:
                self.error(
                    key,
                    "must list at least one extractor; leave it out for the default "
                    "(http, tls-terminate: home-cookie; tcp: client-ip; "
                    "tls-passthrough: tls-ticket, tls-session-id)",
                )
                return None
            specs = []
            for j, entry in enumerate(raw):
                spec = self.extractor_spec(entry, f"{key}[{j}]")
                if spec is not None:
                    specs.append(spec)
            if len(specs) != len(raw):
                return None
        try:
            build_chain(
                [(s.kind, dict(s.options)) for s in specs],
                ExtractorContext(home_cookie_name=cookie_name),
                key_prefix=key,
            )
        except ConfigError as exc:
            self.errors.extend(exc.errors)
            return None
        return tuple(specs)

    def extractor_spec(self, entry: Any, key: str) -> ExtractorSpec | None:
        tbl = self.table(entry, key)
        if tbl is None:
            return None
        kind = tbl.get("kind", _MISSING)
        if kind is _MISSING:
            self.error(f"{key}.kind", 'required: the extractor kind, e.g. kind = "home-cookie"')
            return None
        if not isinstance(kind, str) or not kind:
            self.error(f"{key}.kind", f"must be a non-empty string, not {_type_name(kind)}")
            return None
        options = {k: v for k, v in tbl.items() if k != "kind"}
        return ExtractorSpec(kind, options)

    def address(self, value: Any, key: str) -> Address | None:
        if not isinstance(value, str):
            self.error(key, f"must be a string host:port, not {_type_name(value)}")
            return None
        try:
            return parse_address(value)
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def service_map(
        self,
        tbl: Mapping[str, Any],
        name: str,
        prefix: str,
        what: str,
    ) -> dict[str, Address] | None:
        services = self.service_names
        key = f"{prefix}.{name}"
        raw = tbl.get(name, _MISSING)
        if raw is _MISSING:
            self.error(key, f"required: a table service -> {what} address")
            return None
        mapping = self.table(raw, key)
        if mapping is None:
            return None
        out: dict[str, Address] = {}
        ok = True
        for svc, value in mapping.items():
            addr = self.address(value, f"{key}.{svc}")
            if services is not None and svc not in services:
                message = f"unknown service {svc!r}"
                close = difflib.get_close_matches(str(svc), list(services), n=1)
                if close:
                    message += f"; did you mean {close[0]!r}?"
                elif services:
                    message += f"; the farm's services are: {', '.join(services)}"
                self.error(f"{key}.{svc}", message)
                ok = False
            if addr is None:
                ok = False
            else:
                out[svc] = addr
        if services is not None:
            for svc in services:
                if svc not in mapping:
                    self.error(
                        f"{key}.{svc}",
                        f"missing: every node needs a {what} address for every service",
                    )
                    ok = False
        return out if ok else None

    def workers(self, value: Any, key: str) -> int | None:
        """`workers`: processes sharing this node's ports; "auto" is one per CPU."""
        if value == "auto":
            return max(1, os.cpu_count() or 1)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
            self.error(key, f'must be "auto" or an integer from 1 to {MAX_WORKERS}, not {value!r}')
            return None
        return value

    def nodes(self, raw: Any) -> dict[str, NodeConfig] | None:
        items = self.array_of_tables(raw, "nodes", "the servers of the farm")
        if items is None:
            return None
        out: dict[str, NodeConfig] = {}
        first_index: dict[str, int] = {}
        # every address some node binds, in order: (address, key, node index)
        binds: list[tuple[Address, str, int]] = []
        apps: list[tuple[Address, str, int]] = []
        ok = True
        for i, item in enumerate(items):
            prefix = f"nodes[{i}]"
            tbl = self.table(item, prefix)
            if tbl is None:
                ok = False
                continue
            self.known_keys(tbl, _NODE_KEYS, f"{prefix}.")
            name = self.string(
                tbl,
                "name",
                f"{prefix}.name",
                pattern=_NODE_NAME,
                pattern_text="[A-Za-z0-9_-]{1,64}",
            )
            if name is not None:
                if name in first_index:
                    self.error(
                        f"{prefix}.name",
                        f"duplicate node name {name!r} (also nodes[{first_index[name]}])",
                    )
                    name = None
                else:
                    first_index[name] = i
            forward: Address | None = None
            if "forward" not in tbl:
                self.error(f"{prefix}.forward", "required: the link listener, host:port")
            else:
                forward = self.address(tbl["forward"], f"{prefix}.forward")
            weight = self.integer(tbl, "weight", f"{prefix}.weight", 1, 1, 1000)
            workers = self.workers(tbl.get("workers", "auto"), f"{prefix}.workers")
            listen = self.service_map(tbl, "listen", prefix, "client-facing listen")
            app_map = self.service_map(tbl, "apps", prefix, "local application")
            if forward is not None:
                binds.append((forward, f"{prefix}.forward", i))
            for svc, addr in (listen or {}).items():
                binds.append((addr, f"{prefix}.listen.{svc}", i))
            for svc, addr in (app_map or {}).items():
                apps.append((addr, f"{prefix}.apps.{svc}", i))
            if (
                name is None
                or forward is None
                or weight is None
                or listen is None
                or app_map is None
                or workers is None
            ):
                ok = False
                continue
            out[name] = NodeConfig(name, forward, weight, listen, app_map, workers)
        ok = self.check_binds(binds, apps) and ok
        return out if ok else None

    def check_binds(
        self, binds: list[tuple[Address, str, int]], apps: list[tuple[Address, str, int]]
    ) -> bool:
        """Refuse addresses that cannot all be bound, and apps that point back at lb.

        Within one node every bind must be distinct (a wildcard host overlaps
        every host of the same port). Across nodes the forward addresses must be
        distinct (peers connect to them), and any shared address is refused when
        it is a loopback address or another node's forward address: those nodes
        would run on one machine. Nodes on separate servers may share a
        non-loopback listen address (0.0.0.0:80, an anycast address).
        """
        ok = True
        forwards = {addr for addr, key, _ in binds if key.endswith(".forward")}
        seen: list[tuple[Address, str, int]] = []
        for addr, key, node in binds:
            for other, other_key, other_node in seen:
                if other.port != addr.port:
                    continue
                same_node = other_node == node
                if same_node:
                    clash = (
                        other.host == addr.host
                        or _is_wildcard(other.host)
                        or _is_wildcard(addr.host)
                    )
                else:
                    clash = other.host == addr.host and (
                        key.endswith(".forward")
                        or other_key.endswith(".forward")
                        or addr in forwards
                        or _is_loopback(addr.host)
                    )
                if clash:
                    self.error(key, f"{addr} is already bound by {other_key}")
                    ok = False
                    break
            seen.append((addr, key, node))
        for addr, key, node in apps:
            for other, other_key, other_node in binds:
                if other != addr:
                    continue
                if other_node == node or _is_loopback(addr.host) or addr in forwards:
                    self.error(
                        key,
                        f"{addr} is lb's own address ({other_key}); the application must "
                        "listen on an address of its own",
                    )
                    ok = False
                    break
        return ok

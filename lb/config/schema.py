"""The farm file's sections as key tables, and the rules that span keys.

Each table of the file ([farm], [limits], [log], [[services]], [[nodes]],
a service's `tls`) is one tuple of `Key` (name, check, default, meaning);
[limits] is read from the Limits dataclass. `parse_document` walks them with
one `Walker` and builds the FarmConfig. What a key table cannot say is here
as a rule written once: the secret pair, the extractor chain (proven by
building it), TLS files (proven by loading them); node addresses that cannot
all be bound are lb.config.binds's rule.

Reads the secret file and the PEM files a farm file names; never touches
sockets and never reads the clock.
"""

from __future__ import annotations

import ipaddress
import math
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lb.config.binds import Bound, check_binds, listen_binds
from lb.config.build import app_context, checked_server_context, extractor_chain
from lb.config.cpus import read_usable_cpus
from lb.config.model import (
    Address,
    ExtractorSpec,
    FarmConfig,
    Limits,
    NodeConfig,
    ServiceConfig,
    is_loopback,
    is_wildcard,
    limit_keys,
    parse_address,
)
from lb.config.spec import (
    ABSENT,
    INVALID,
    NONE,
    Check,
    Ctx,
    Derived,
    Invalid,
    Key,
    Mark,
    Walker,
    array_of,
    boolean,
    choice,
    complete,
    did_you_mean,
    file_path,
    integer,
    text,
    type_name,
)
from lb.errors import ConfigError

__all__ = ["DOCUMENT", "FARM", "LOG", "NODE", "SERVICE", "TLS", "parse_document"]

MIN_SECRET_BYTES = 32
MAX_WORKERS = 256

_FARM_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SERVICE_NAME = _FARM_NAME
_NODE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")  # RFC 9110 token
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]{1,256}=*")  # RFC 9110 token68 (a bearer token)

PROTOCOLS = ("http", "tcp", "tls-passthrough", "tls-terminate")
DEFAULT_EXTRACTORS: dict[str, tuple[str, ...]] = {
    "http": ("home-cookie",),
    "tcp": ("client-ip",),
    "tls-passthrough": ("tls-ticket", "tls-session-id"),
    "tls-terminate": ("home-cookie",),
}


# --------------------------------------------------------------------------- [farm]


def _check_secret(secret: bytes) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise Invalid(
            f"the secret is {len(secret)} bytes; at least {MIN_SECRET_BYTES} are required. "
            'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )
    return secret


def _secret_text(value: Any, ctx: Ctx) -> bytes:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, not {type_name(value)}")
    return _check_secret(value.encode("utf-8"))


def _secret(value: Any, ctx: Ctx) -> bytes:
    if "secret_file" in ctx.table:
        raise Invalid("set exactly one of secret and secret_file, not both")
    return _secret_text(value, ctx)


def _no_secret(ctx: Ctx) -> Any:
    if "secret_file" not in ctx.table:
        raise Invalid(
            "required: set secret (or secret_file); every node of the farm uses the same one"
        )
    return ABSENT


def _secret_file(value: Any, ctx: Ctx) -> bytes | Mark:
    if "secret" in ctx.table:
        return INVALID  # reported under farm.secret
    if not isinstance(value, str) or not value:
        raise Invalid(f"must be a file path, not {type_name(value)}")
    path = ctx.walker.base_dir / value
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise Invalid(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if content.endswith(b"\r\n"):
        content = content[:-2]
    elif content.endswith(b"\n"):
        content = content[:-1]
    return _check_secret(content)


LINK_SECURITY = ("mtls", "plaintext")


def _link_security(value: Any, ctx: Ctx) -> str:
    if value not in LINK_SECURITY:
        hint = ' (did you mean "mtls"?)' if value in ("tls", "mutual-tls", "mTLS") else ""
        raise Invalid(f'{value!r} is not one of: "mtls" (the default), "plaintext"{hint}')
    return str(value)


def _link_certs(value: Any, ctx: Ctx) -> Path:
    if not isinstance(value, str) or not value:
        raise Invalid(f"must be a directory path, not {type_name(value)}")
    path = ctx.walker.base_dir / value
    if not (path / "ca.pem").is_file():
        farm = ctx.row.get("name")
        farm_arg = farm if isinstance(farm, str) else "FARM"
        raise Invalid(
            f"no farm CA at {str(path / 'ca.pem')!r}: make it and the node certificates "
            f"with `lb certs {path} --farm {farm_arg} --nodes <every node name, comma-separated>`"
        )
    return path


def _no_link_certs(ctx: Ctx) -> Any:
    if ctx.row.get("link_security", "mtls") == "mtls":
        raise Invalid(
            'required with link_security = "mtls" (the default): the directory of the farm CA '
            "and node certificates, made by `lb certs DIR --farm FARM --nodes a,b,c`; or set "
            'link_security = "plaintext" to run links without TLS on a trusted network'
        )
    return None


def _cidr(value: Any, ctx: Ctx) -> str:
    """An IPv4 or IPv6 network ("10.0.0.0/8", "2001:db8::/32"; a bare address is a /32 or
    /128), in its canonical text."""
    if not isinstance(value, str):
        raise Invalid(f'must be a string CIDR such as "10.0.0.0/8", not {type_name(value)}')
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise Invalid(f"{value!r} is not a network: {exc}") from None


FARM: tuple[Key, ...] = (
    Key("name", text(_FARM_NAME, "[A-Za-z0-9._-]{1,64}"), doc="farm name"),
    Key("secret", _secret, Derived(_no_secret), doc="the shared secret, >= 32 bytes"),
    Key("secret_file", _secret_file, ABSENT, doc="a file holding the secret"),
    Key("previous_secrets", array_of(_secret_text), [], doc="old secrets still accepted"),
    Key(
        "link_security",
        _link_security,
        "mtls",
        doc='"mtls" (mutual TLS 1.3 with the farm CA) or "plaintext"',
    ),
    Key(
        "link_certs",
        _link_certs,
        Derived(_no_link_certs),
        doc="directory of ca.pem and <node>.pem/.key (lb certs)",
    ),
    Key(
        "cookie_name",
        text(_TOKEN, "HTTP token characters (letters, digits, !#$%&'*+-.^_`|~), 1..128"),
        "lbhome",
        doc="the home cookie's name",
    ),
    Key("cookie_ttl", integer(60, 31536000), 86400, doc="the home cookie's lifetime, seconds"),
    Key(
        "trusted_proxies",
        array_of(_cidr),
        [],
        doc="CIDRs of proxies whose X-Forwarded-For / Forwarded chains are kept and extended",
    ),
)


def _access_log(value: Any, ctx: Ctx) -> bool:
    return bool(choice(("on", "off"))(value, ctx) == "on")


def _sample(value: Any, ctx: Ctx) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"must be a number from 0.0 to 1.0, not {type_name(value)}")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise Invalid(f"{value} is out of range 0.0 .. 1.0 (the share of requests logged)")
    return number


LOG: tuple[Key, ...] = (
    Key("level", choice(("debug", "info", "warning", "error")), "info", doc="log level"),
    Key("format", choice(("console", "json")), "console", doc="one JSON object per line"),
    Key(
        "access_log",
        _access_log,
        "on",
        doc='"on" or "off": one line per HTTP request (event "access"), whatever the level',
    ),
    Key(
        "access_log_sample",
        _sample,
        1.0,
        doc="the share of requests the access log writes, 0.0 .. 1.0 (drawn per request)",
    ),
)


def _farm(value: Any, ctx: Ctx) -> Mapping[str, Any] | Mark:
    row = ctx.walker.walk(value, FARM, ctx.key)
    if row is None:
        return INVALID
    if isinstance(row["cookie_name"], str):
        ctx.walker.cookie_name = row["cookie_name"]
    if row["secret"] is ABSENT:
        row["secret"] = row["secret_file"]
    return row if complete(row) else INVALID


def _section(keys: Sequence[Key]) -> Check:
    def check(value: Any, ctx: Ctx) -> Mapping[str, Any] | Mark:
        row = ctx.walker.walk(value, keys, ctx.key)
        return row if complete(row) else INVALID

    return check


def _limits(value: Any, ctx: Ctx) -> Limits | Mark:
    row = ctx.walker.walk(value, limit_keys(), ctx.key)
    if row is None or not complete(row):
        return INVALID
    return Limits(**row)


# --------------------------------------------------------------------------- [[services]]


def _protocol_is_terminate(ctx: Ctx) -> bool | None:
    """True for tls-terminate, False for another protocol, None when it is invalid."""
    protocol = ctx.row["protocol"]
    return None if protocol is INVALID else protocol == "tls-terminate"


def _terminate_only(value: Any, ctx: Ctx) -> bool:
    """The key is legal here; False (nothing to check) when the protocol is unknown."""
    terminate = _protocol_is_terminate(ctx)
    if terminate is False:
        raise Invalid("only a tls-terminate service takes this key")
    return bool(terminate)


TICKET_MODES = ("farm", "worker", "off")  # a tls-terminate service's session ticket keys

TLS: tuple[Key, ...] = (
    Key("cert", file_path, doc="certificate chain (PEM)", required=(
        "required: a file path (relative to the config file)")),
    Key("key", file_path, doc="private key (PEM)", required=(
        "required: a file path (relative to the config file)")),
    Key("tickets", choice(TICKET_MODES), "farm", doc=(
        'session tickets: "farm" (a key every node and worker derives from the farm '
        'secret, renewed hourly), "worker" (OpenSSL\'s own key per process), "off"')),
)  # fmt: skip


def _tls(value: Any, ctx: Ctx) -> tuple[Path, Path, str] | Mark:
    if not _terminate_only(value, ctx):
        return INVALID
    row = ctx.walker.walk(value, TLS, ctx.key)
    if row is None or not complete(row):
        return INVALID
    try:
        checked_server_context(row["cert"], row["key"], ctx.key)
    except ConfigError as exc:
        for key, message in exc.errors:
            ctx.walker.error(key, message)
        return INVALID
    return row["cert"], row["key"], row["tickets"]


def _no_tls(ctx: Ctx) -> None:
    if _protocol_is_terminate(ctx):
        raise Invalid('required for tls-terminate: tls = { cert = "cert.pem", key = "key.pem" }')


def _app_tls(value: Any, ctx: Ctx) -> bool:
    flag = boolean(value, ctx)
    return _terminate_only(value, ctx) and flag


def _app_tls_ca(value: Any, ctx: Ctx) -> Path | Mark:
    if not _terminate_only(value, ctx):
        return INVALID
    path = file_path(value, ctx)
    try:
        app_context(path)
    except (ssl.SSLError, OSError) as exc:
        raise Invalid(f"cannot load the CA file: {exc}") from None
    return path


def _app_tls_verify(value: Any, ctx: Ctx) -> bool:
    flag = boolean(value, ctx)
    if not _terminate_only(value, ctx):
        return True
    if flag is False and ctx.row.get("app_tls_ca") not in (None, INVALID):
        raise Invalid("app_tls_ca is given: the application's certificate is verified; drop one")
    return flag


def _default_app_tls_verify(ctx: Ctx) -> bool:
    if ctx.row.get("app_tls") is True and ctx.row.get("app_tls_ca") is None:
        raise Invalid(
            "app_tls = true without app_tls_ca would trust any certificate: give "
            "app_tls_ca (the CA that signed the application's certificate), or set "
            "app_tls_verify = false to skip verification explicitly"
        )
    return True


def _speaks_http(ctx: Ctx) -> bool | None:
    """True for http and tls-terminate, False for tcp and tls-passthrough, None if invalid."""
    protocol = ctx.row["protocol"]
    return None if protocol is INVALID else protocol in ("http", "tls-terminate")


def _forwarded_headers(value: Any, ctx: Ctx) -> bool:
    flag = boolean(value, ctx)
    if _speaks_http(ctx) is False:
        raise Invalid(
            "only an http or tls-terminate service takes this key (a tcp or "
            'tls-passthrough service gives the client address by app_proxy_protocol = "v2")'
        )
    return flag


def _app_proxy_protocol(value: Any, ctx: Ctx) -> str:
    mode: str = choice(("off", "v2"))(value, ctx)
    if _speaks_http(ctx):
        raise Invalid(
            "only a tcp or tls-passthrough service takes this key (an http or "
            "tls-terminate service gives the client address by forwarded_headers)"
        )
    return mode


def _accept_proxy_from(value: Any, ctx: Ctx) -> tuple[str, ...] | Mark:
    if value and ctx.row["protocol"] == "tls-terminate":
        raise Invalid(
            "not supported for tls-terminate yet (the PROXY header comes before the TLS "
            "handshake); use it on http, tcp and tls-passthrough services"
        )
    networks: tuple[str, ...] | Mark = array_of(_cidr)(value, ctx)
    return networks


def _extractor_spec(entry: Any, key: str, ctx: Ctx) -> ExtractorSpec | None:
    tbl = ctx.walker.table(entry, key)
    if tbl is None:
        return None
    kind = tbl.get("kind", ABSENT)
    if kind is ABSENT:
        ctx.walker.error(f"{key}.kind", 'required: the extractor kind, e.g. kind = "home-cookie"')
        return None
    if not isinstance(kind, str) or not kind:
        ctx.walker.error(f"{key}.kind", f"must be a non-empty string, not {type_name(kind)}")
        return None
    return ExtractorSpec(kind, {k: v for k, v in tbl.items() if k != "kind"})


def _prove_chain(specs: tuple[ExtractorSpec, ...], ctx: Ctx) -> tuple[ExtractorSpec, ...] | Mark:
    try:
        extractor_chain(specs, ctx.walker.cookie_name, ctx.key)
    except ConfigError as exc:
        ctx.walker.errors.extend(exc.errors)
        return INVALID
    return specs


def _extractors(value: Any, ctx: Ctx) -> tuple[ExtractorSpec, ...] | Mark:
    if not isinstance(value, list):
        raise Invalid(f"must be an array of tables, not {type_name(value)}")
    if not value:
        raise Invalid(
            "must list at least one extractor; leave it out for the default "
            "(http, tls-terminate: home-cookie; tcp: client-ip; "
            "tls-passthrough: tls-ticket, tls-session-id)"
        )
    specs = [_extractor_spec(entry, f"{ctx.key}[{j}]", ctx) for j, entry in enumerate(value)]
    if None in specs:
        # the entries that are well-formed are still built, each reported at its own index
        # (every problem at once: a typo in one option is not hidden by another entry)
        for j, spec in enumerate(specs):
            if spec is not None:
                _prove_entry(spec, j, ctx)
        return INVALID
    return _prove_chain(tuple(s for s in specs if s is not None), ctx)


def _prove_entry(spec: ExtractorSpec, index: int, ctx: Ctx) -> None:
    """Build one extractor of a chain alone; its errors keyed at `index` in the chain."""
    try:
        extractor_chain((spec,), ctx.walker.cookie_name, ctx.key)
    except ConfigError as exc:
        alone = f"{ctx.key}[0]"
        ctx.walker.errors.extend(
            (f"{ctx.key}[{index}]{key[len(alone) :]}", message) for key, message in exc.errors
        )


def _default_extractors(ctx: Ctx) -> tuple[ExtractorSpec, ...] | Mark:
    protocol = ctx.row["protocol"]
    if not isinstance(protocol, str):
        return INVALID
    return _prove_chain(tuple(ExtractorSpec(k, {}) for k in DEFAULT_EXTRACTORS[protocol]), ctx)


SERVICE: tuple[Key, ...] = (
    Key("name", text(_SERVICE_NAME, "[A-Za-z0-9._-]{1,64}"), doc="service name"),
    Key("protocol", choice(PROTOCOLS), doc="how lb reads the client's stream"),
    Key("extractors", _extractors, Derived(_default_extractors), doc="the chain"),
    Key("tls", _tls, Derived(_no_tls), doc="tls-terminate: { cert, key }"),
    Key(
        "app_tls",
        _app_tls,
        Derived(lambda ctx: False),
        doc="tls-terminate: TLS to the application",
    ),
    Key("app_tls_ca", _app_tls_ca, NONE, doc="verify the application against this CA"),
    Key(
        "app_tls_verify",
        _app_tls_verify,
        Derived(_default_app_tls_verify),
        doc="false: TLS to the application without verifying it (explicit)",
    ),
    Key(
        "client_affinity",
        boolean,
        Derived(lambda ctx: True),
        doc="new sessions of one client address agree on a home (false: each placed alone)",
    ),
    Key(
        "forwarded_headers",
        _forwarded_headers,
        Derived(lambda ctx: True),
        doc="http, tls-terminate: X-Forwarded-For/-Proto and Forwarded to the application",
    ),
    Key(
        "app_proxy_protocol",
        _app_proxy_protocol,
        Derived(lambda ctx: "off"),
        doc='tcp, tls-passthrough: "v2" starts each application connection with PROXY v2',
    ),
    Key(
        "accept_proxy_from",
        _accept_proxy_from,
        [],
        doc="CIDRs of front balancers whose connections start with a PROXY v2 header",
    ),
)


def _services(value: Any, ctx: Ctx) -> dict[str, ServiceConfig] | Mark:
    walker = ctx.walker
    rows = walker.array_of_tables(value, ctx.key, "what the farm serves", SERVICE, "service")
    if rows is None:
        return INVALID
    walker.service_names = [row["name"] for _, row in rows if isinstance(row["name"], str)]
    out: dict[str, ServiceConfig] = {}
    for _, row in rows:
        if complete(row):
            cert, key, tickets = row["tls"] or (None, None, "farm")
            out[row["name"]] = ServiceConfig(
                row["name"],
                row["protocol"],
                row["extractors"],
                cert,
                key,
                row["app_tls"],
                row["app_tls_ca"],
                forwarded_headers=row["forwarded_headers"],
                client_affinity=row["client_affinity"],
                app_proxy_protocol=row["app_proxy_protocol"],
                accept_proxy_from=row["accept_proxy_from"],
                tls_tickets=tickets,
            )
    return out if len(out) == len(value) else INVALID


# --------------------------------------------------------------------------- [[nodes]]


def _address(value: Any, ctx: Ctx) -> Address:
    if not isinstance(value, str):
        raise Invalid(f"must be a string host:port, not {type_name(value)}")
    try:
        return parse_address(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def _advertise(value: Any, ctx: Ctx) -> Address:
    address = _address(value, ctx)
    if is_wildcard(address.host):
        raise Invalid(f"{address} is a wildcard; peers need an address they can connect to")
    return address


MIN_ADMIN_TOKEN = 16


def _admin_token_text(token: str) -> str:
    if len(token) < MIN_ADMIN_TOKEN or not _TOKEN68.fullmatch(token):
        raise Invalid(
            f"must be at least {MIN_ADMIN_TOKEN} characters of A-Z a-z 0-9 -._~+/= "
            '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return token


def _admin_token(value: Any, ctx: Ctx) -> str:
    if "admin_token_file" in ctx.table:
        raise Invalid("set at most one of admin_token and admin_token_file, not both")
    if not isinstance(value, str):
        raise Invalid(f"must be a string, not {type_name(value)}")
    return _admin_token_text(value)


def _admin_token_file(value: Any, ctx: Ctx) -> str | Mark:
    if "admin_token" in ctx.table:
        return INVALID  # reported under admin_token
    if not isinstance(value, str) or not value:
        raise Invalid(f"must be a file path, not {type_name(value)}")
    path = ctx.walker.base_dir / value
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Invalid(f"cannot read {str(path)!r}: {reason}") from None
    return _admin_token_text(content.strip())


def _workers(value: Any, ctx: Ctx) -> int:
    if value == "auto":
        return read_usable_cpus()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise Invalid(f'must be "auto" or an integer from 1 to {MAX_WORKERS}, not {value!r}')
    return value


def _one_address(raw: Any, key: str, ctx: Ctx) -> Address | Mark:
    """An address, its problem recorded under `key`."""
    try:
        return _address(raw, ctx)
    except Invalid as exc:
        ctx.walker.error(key, str(exc))
        return INVALID


def _bindable(address: Address, key: str, ctx: Ctx) -> bool:
    """False (the problem recorded under `key`) for an IPv4-mapped IPv6 address, which an
    IPv6-only socket cannot bind (EINVAL when the node starts)."""
    try:
        mapped = ipaddress.ip_address(address.host)
    except ValueError:
        return True
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
        ctx.walker.error(
            key,
            f"{address} is an IPv4-mapped address, which lb's IPv6-only sockets cannot "
            f"bind: listen on {mapped.ipv4_mapped}:{address.port} instead",
        )
        return False
    return True


def _listen_addresses(raw: Any, key: str, ctx: Ctx) -> tuple[Address, ...] | Mark:
    """A service's client-facing addresses: one string, or a non-empty array of distinct
    ones (each problem keyed `key[j]`), in the file's order: the first is the primary."""
    if isinstance(raw, str):
        one = _one_address(raw, key, ctx)
        return (one,) if isinstance(one, Address) and _bindable(one, key, ctx) else INVALID
    if not isinstance(raw, list):
        ctx.walker.error(
            key, f"must be a string host:port or an array of them, not {type_name(raw)}"
        )
        return INVALID
    if not raw:
        ctx.walker.error(key, 'must list at least one address, e.g. ["0.0.0.0:8080", "[::]:8080"]')
        return INVALID
    out: list[Address] = []
    first: dict[Address, int] = {}
    for j, entry in enumerate(raw):
        address = _one_address(entry, f"{key}[{j}]", ctx)
        if not isinstance(address, Address) or not _bindable(address, f"{key}[{j}]", ctx):
            continue
        if address in first:
            ctx.walker.error(
                f"{key}[{j}]", f"{address} is listed twice (also {key}[{first[address]}])"
            )
            continue
        first[address] = j
        out.append(address)
    return tuple(out) if len(out) == len(raw) else INVALID


def _service_map(what: str, value: Callable[[Any, str, Ctx], Any]) -> Check:
    """A table service -> `value` (an address, or the listen addresses) naming every
    service of the farm, and only those."""

    def check(mapping_value: Any, ctx: Ctx) -> dict[str, Any] | Mark:
        walker = ctx.walker
        mapping = walker.table(mapping_value, ctx.key)
        if mapping is None:
            return INVALID
        services = walker.service_names
        out: dict[str, Any] = {}
        ok = True
        for svc, raw in mapping.items():
            key = f"{ctx.key}.{svc}"
            out[svc] = value(raw, key, ctx)
            if out[svc] is INVALID:
                ok = False
            if services is not None and svc not in services:
                message = f"unknown service {svc!r}"
                close = did_you_mean(str(svc), services)
                if close is not None:
                    message += f"; did you mean {close!r}?"
                elif services:
                    message += f"; the farm's services are: {', '.join(services)}"
                walker.error(key, message)
                ok = False
        node = ctx.row["name"]
        this = f"node {node!r}" if isinstance(node, str) else "this node"
        for svc in services or ():
            if svc not in mapping:
                walker.error(
                    f"{ctx.key}.{svc}",
                    f"missing: every node needs a {what} address for every service "
                    f"({this} has none for {svc!r})",
                )
                ok = False
        return out if ok else INVALID

    return check


def _map_required(what: str) -> str:
    return f"required: a table service -> {what} address"


NODE: tuple[Key, ...] = (
    Key("name", text(_NODE_NAME, "[A-Za-z0-9_-]{1,64}"), doc="node name"),
    Key("forward", _address, doc="the link listener this node binds",
        required="required: the link listener, host:port"),
    Key("advertise", _advertise, NONE, doc="where peers connect (default: forward)"),
    Key("weight", integer(1, 1000), 1, doc="share of new sessions"),
    Key("workers", _workers, "auto", doc="processes sharing the node's ports"),
    Key("listen", _service_map("client-facing listen", _listen_addresses),
        doc="service -> client-facing address, or an array of them (the first the primary)",
        required=_map_required("client-facing listen")),
    Key("apps", _service_map("local application", _one_address),
        doc="service -> application address", required=_map_required("local application")),
    Key("admin", _address, NONE,
        doc="admin listener: /metrics, the JSON API and the farm page (default: off)"),
    Key("admin_token", _admin_token, NONE,
        doc="bearer token the admin listener requires (required off loopback)"),
    Key("admin_token_file", _admin_token_file, NONE, doc="a file holding admin_token"),
)  # fmt: skip


def _nodes(value: Any, ctx: Ctx) -> dict[str, NodeConfig] | Mark:
    walker = ctx.walker
    rows = walker.array_of_tables(value, ctx.key, "the servers of the farm", NODE, "node")
    if rows is None:
        return INVALID
    binds: list[Bound] = []
    apps: list[Bound] = []
    advertised: list[Bound] = []
    for i, row in rows:
        prefix = f"{ctx.key}[{i}]"
        name = row["name"] if isinstance(row["name"], str) else None
        if isinstance(row["forward"], Address):
            binds.append(Bound(row["forward"], f"{prefix}.forward", i, name))
        if isinstance(row["advertise"], Address):
            advertised.append(Bound(row["advertise"], f"{prefix}.advertise", i, name))
        elif row["advertise"] is None and isinstance(row["forward"], Address):
            advertised.append(Bound(row["forward"], f"{prefix}.forward", i, name))
        if isinstance(row["listen"], dict):
            binds += listen_binds(row["listen"], value[i]["listen"], f"{prefix}.listen", i, name)
        for svc, addr in (row["apps"] if isinstance(row["apps"], dict) else {}).items():
            apps.append(Bound(addr, f"{prefix}.apps.{svc}", i, name))
        if isinstance(row["admin"], Address):
            binds.append(Bound(row["admin"], f"{prefix}.admin", i, name))
    ok = check_binds(walker, binds, apps, advertised)
    ok = _check_admin(walker, rows, ctx.key) and ok
    out = {row["name"]: NodeConfig(**_admin_row(row)) for _, row in rows if complete(row)}
    return out if ok and len(out) == len(value) else INVALID


def _admin_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row as NodeConfig takes it: admin_token_file read into admin_token."""
    out = dict(row)
    from_file = out.pop("admin_token_file")
    if from_file is not None:
        out["admin_token"] = from_file
    return out


def _check_admin(walker: Walker, rows: list[tuple[int, dict[str, Any]]], key: str) -> bool:
    """An admin listener off loopback must require a token: it can drain the node."""
    ok = True
    for i, row in rows:
        admin = row["admin"]
        tokens = (row["admin_token"], row["admin_token_file"])
        if not isinstance(admin, Address) or is_loopback(admin.host):
            continue
        if all(t is None for t in tokens):
            walker.error(
                f"{key}[{i}].admin_token",
                f"required: the admin listener {admin} is not on loopback; set admin_token "
                "(or admin_token_file), or bind admin to 127.0.0.1",
            )
            ok = False
    return ok


# --------------------------------------------------------------------------- the document


def _required_array(what: str, where: str) -> str:
    return f"required: at least one [[{where}]] table ({what})"


DOCUMENT: tuple[Key, ...] = (
    Key("farm", _farm, doc="the farm", required="required: the [farm] table is missing"),
    Key("limits", _limits, {}, doc="bounds on bytes, time and flows"),
    Key("log", _section(LOG), {}, doc="logging"),
    Key("services", _services, doc="what the farm serves",
        required=_required_array("what the farm serves", "services")),
    Key("nodes", _nodes, doc="the servers of the farm",
        required=_required_array("the servers of the farm", "nodes")),
)  # fmt: skip


def parse_document(data: Any, base_dir: Path, source: str) -> FarmConfig:
    """Validate a parsed farm file; ConfigError listing every problem by key."""
    walker = Walker(base_dir)
    row = walker.walk(data, DOCUMENT, "")
    if walker.errors or row is None or not complete(row):
        raise ConfigError(walker.errors)
    farm, log = row["farm"], row["log"]
    return FarmConfig(
        name=farm["name"],
        secret=farm["secret"],
        previous_secrets=farm["previous_secrets"],
        link_security=farm["link_security"],
        link_certs=farm["link_certs"],
        trusted_proxies=farm["trusted_proxies"],
        cookie_name=farm["cookie_name"],
        cookie_ttl=farm["cookie_ttl"],
        limits=row["limits"],
        log_level=log["level"],
        log_format=log["format"],
        access_log=log["access_log"],
        access_log_sample=log["access_log_sample"],
        services=row["services"],
        nodes=row["nodes"],
        source=source,
    )

"""A service as one node serves it: listener addresses, application address, TLS contexts.

Built once at start from the farm config; the client and home sides read it on
every connection. It holds ssl.SSLContext objects (I/O configuration), so it
lives in the I/O layer; it makes no routing decision.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from lb.config import Address, NodeConfig, ServiceConfig
from lb.config.build import app_context, extractor_chain
from lb.extract.api import Extractor, HomeCookieVerifier
from lb.node.servertls import ServerTls
from lb.wire.forwarded import TrustedProxies


@dataclass(frozen=True, slots=True)
class Service:
    """One service of this node."""

    name: str
    protocol: str
    http: bool  # lb reads HTTP/1.1 from the client stream (http, tls-terminate)
    chain: tuple[Extractor, ...]
    listen: tuple[Address, ...]  # one listener per address; the first is the primary
    app: Address
    server_tls: ServerTls | None  # tls-terminate: lb ends the client's TLS (SIGHUP renews it)
    app_ssl: ssl.SSLContext | None  # TLS towards the local application
    app_server_hostname: str | None
    secure_cookie: bool  # the home cookie gets Secure (the client spoke TLS)
    passthrough: bool  # tls-passthrough: learn TLS 1.2 sessions from the ServerHello
    learn_cookies: tuple[str, ...]  # application cookies whose Set-Cookie the home records
    # the client's address to the application (issue 10, docs/client-address.md)
    forwarded_headers: bool = False  # http: X-Forwarded-For/-Proto, Forwarded (lb.wire.forwarded)
    client_affinity: bool = True  # new sessions of one client address agree on a home
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)  # farm-wide
    app_proxy_v2: bool = False  # tcp: the home writes a PROXY v2 header to the application
    accept_proxy_from: TrustedProxies = field(default_factory=TrustedProxies)  # front balancers


def build_service(
    cfg: ServiceConfig,
    me: NodeConfig,
    cookie_name: str,
    keyring: HomeCookieVerifier | None = None,
    trusted_proxies: Sequence[str] = (),
    farm: tuple[str, bytes] = ("", b""),
) -> Service:
    """Everything one node needs to serve `cfg`: extractor chain, addresses, TLS contexts."""
    chain = extractor_chain(cfg.extractors, cookie_name, f"services.{cfg.name}.extractors", keyring)
    terminate = cfg.protocol == "tls-terminate"
    app_ssl = app_context(cfg.app_tls_ca) if terminate and cfg.app_tls else None
    server_tls = None
    if terminate:
        assert cfg.tls_cert is not None and cfg.tls_key is not None
        # farm: the farm's name and secret, from which a "farm" ticket key is derived
        server_tls = ServerTls(cfg.name, cfg.tls_cert, cfg.tls_key, cfg.tls_tickets, *farm)
    app = me.apps[cfg.name]
    learn = tuple(
        str(spec.options["name"])
        for spec in cfg.extractors
        if spec.kind == "cookie" and "name" in spec.options
    )
    return Service(
        name=cfg.name,
        protocol=cfg.protocol,
        http=cfg.speaks_http,
        chain=tuple(chain),
        listen=me.listen[cfg.name],
        app=app,
        server_tls=server_tls,
        app_ssl=app_ssl,
        app_server_hostname=app.host if app_ssl is not None and cfg.app_tls_ca else None,
        secure_cookie=terminate,
        passthrough=cfg.protocol == "tls-passthrough",
        learn_cookies=learn,
        forwarded_headers=cfg.speaks_http and cfg.forwarded_headers,
        client_affinity=cfg.client_affinity,
        trusted_proxies=TrustedProxies(trusted_proxies),
        app_proxy_v2=cfg.app_proxy_protocol == "v2",
        accept_proxy_from=TrustedProxies(cfg.accept_proxy_from),
    )

"""A service as one node serves it: listener address, application address, TLS contexts.

Built once at start from the farm config; the client and home sides read it on
every connection. It holds ssl.SSLContext objects (I/O configuration), so it
lives in the I/O layer; it makes no routing decision.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from lb.config import Address, NodeConfig, ServiceConfig
from lb.extract.api import Extractor, ExtractorContext
from lb.extract.registry import build_chain


@dataclass(frozen=True, slots=True)
class Service:
    """One service of this node."""

    name: str
    protocol: str
    http: bool  # lb reads HTTP/1.1 from the client stream (http, tls-terminate)
    chain: tuple[Extractor, ...]
    listen: Address
    app: Address
    server_ssl: ssl.SSLContext | None  # tls-terminate: lb ends the client's TLS
    app_ssl: ssl.SSLContext | None  # TLS towards the local application
    app_server_hostname: str | None
    secure_cookie: bool  # the home cookie gets Secure (the client spoke TLS)
    passthrough: bool  # tls-passthrough: learn TLS 1.2 sessions from the ServerHello
    learn_cookies: tuple[str, ...]  # application cookies whose Set-Cookie the home records


def server_context(cfg: ServiceConfig) -> ssl.SSLContext:
    """The listener context of a tls-terminate service: TLS 1.2+, ALPN http/1.1."""
    assert cfg.tls_cert is not None and cfg.tls_key is not None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def app_context(cfg: ServiceConfig) -> ssl.SSLContext:
    """The client context towards the local application (verified only with app_tls_ca)."""
    if cfg.app_tls_ca is not None:
        ctx = ssl.create_default_context(cafile=str(cfg.app_tls_ca))
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def build_service(cfg: ServiceConfig, me: NodeConfig, cookie_name: str) -> Service:
    """Everything one node needs to serve `cfg`: extractor chain, addresses, TLS contexts."""
    specs = [(spec.kind, spec.options) for spec in cfg.extractors]
    chain = build_chain(
        specs,
        ExtractorContext(home_cookie_name=cookie_name),
        key_prefix=f"services.{cfg.name}.extractors",
    )
    terminate = cfg.protocol == "tls-terminate"
    app_ssl = app_context(cfg) if terminate and cfg.app_tls else None
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
        server_ssl=server_context(cfg) if terminate else None,
        app_ssl=app_ssl,
        app_server_hostname=app.host if app_ssl is not None and cfg.app_tls_ca else None,
        secure_cookie=terminate,
        passthrough=cfg.protocol == "tls-passthrough",
        learn_cookies=learn,
    )

"""The certificate of a tls-terminate listener, renewed from its files on SIGHUP.

`ServerTls` holds the listener's ssl.SSLContext (lb.config.build.server_context)
and the certificate and key files it was made from. `reload()` makes a fresh
context from the same files (a renewed certificate written over the old one, as
certbot and other ACME clients do): handshakes that start after it present the
new certificate, connections already up keep theirs. A file that cannot be
loaded raises ConfigError keyed `services.<name>.tls.cert` / `.tls.key` with
what is wrong with it (lb.config.tlsfiles), and the old context stays. An
expired certificate is served, as nginx and HAProxy serve one, and logged as
the warning `tls_cert_expired` with its notAfter, at start and at each reload.
TLS sessions of the old context (its session cache and ticket keys) are not
carried over: a client resuming one after a reload gets a full handshake.

The context remembers the server name each client sent (its `sni_callback`
keeps it on the connection's ssl.SSLObject: under uvloop's SSL transport as
under asyncio's, the server side's `server_hostname` is None whatever the
client sent), and `connection_tls` reads a connection's version, cipher and
server name once, when its handshake is done, for its access lines.

It must not touch connections beyond reading their TLS; it only configures TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import structlog

from lb.clock import wall
from lb.config.build import checked_server_context
from lb.config.tlsfiles import certificate_not_after, expiry_warning
from lb.errors import ConfigError
from lb.node.accesslog import tls_fields

log = structlog.get_logger("lb.node")

__all__ = ["ServerTls", "connection_tls"]

SNI_ATTRIBUTE = "lb_server_name"  # set on each ssl.SSLObject by the context's sni_callback


def _remember_server_name(
    ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext
) -> None:
    """The context's sni_callback: keep the name the client sent (None: it sent none)."""
    setattr(ssl_object, SNI_ATTRIBUTE, server_name)


def connection_tls(transport: asyncio.BaseTransport) -> dict[str, str | None]:
    """The access-log fields of a tls-terminate connection whose handshake is done
    (lb.node.accesslog.tls_fields): its version, cipher and the server name sent."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return tls_fields(None, None, None)
    cipher = ssl_object.cipher()
    return tls_fields(
        ssl_object.version(),
        cipher[0] if cipher is not None else None,
        getattr(ssl_object, SNI_ATTRIBUTE, None),
    )


def _context(cert: Path, key: Path, key_prefix: str) -> ssl.SSLContext:
    context = checked_server_context(cert, key, key_prefix)
    context.sni_callback = _remember_server_name
    return context


class ServerTls:
    """The context a tls-terminate service's listeners hand to new handshakes."""

    __slots__ = ("cert", "context", "key", "service")

    def __init__(self, service: str, cert: Path, key: Path) -> None:
        self.service = service
        self.cert = cert
        self.key = key
        self.context: ssl.SSLContext = _context(cert, key, self.key_prefix)
        self.warn_if_expired()

    @property
    def key_prefix(self) -> str:
        return f"services.{self.service}.tls"

    def reload(self) -> None:
        """A fresh context from the files; raises ConfigError and keeps the old one."""
        try:
            self.context = _context(self.cert, self.key, self.key_prefix)
        except ConfigError as exc:
            raise ConfigError(
                [
                    (key, f"{message}; the listener keeps the certificate it had")
                    for key, message in exc.errors
                ]
            ) from None
        self.warn_if_expired()

    def warn_if_expired(self) -> None:
        """Log `tls_cert_expired` when the certificate's notAfter has passed."""
        warning = expiry_warning(self.cert, wall())
        if warning is not None:
            not_after = certificate_not_after(self.cert)
            log.warning(
                "tls_cert_expired",
                service=self.service,
                key=f"{self.key_prefix}.cert",
                not_after=not_after.isoformat() if not_after is not None else None,
                warning=warning,
            )

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

It must not touch connections; it only configures TLS.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import structlog

from lb.clock import wall
from lb.config.build import checked_server_context
from lb.config.tlsfiles import certificate_not_after, expiry_warning
from lb.errors import ConfigError

log = structlog.get_logger("lb.node")

__all__ = ["ServerTls"]


class ServerTls:
    """The context a tls-terminate service's listeners hand to new handshakes."""

    __slots__ = ("cert", "context", "key", "service")

    def __init__(self, service: str, cert: Path, key: Path) -> None:
        self.service = service
        self.cert = cert
        self.key = key
        self.context: ssl.SSLContext = checked_server_context(cert, key, self.key_prefix)
        self.warn_if_expired()

    @property
    def key_prefix(self) -> str:
        return f"services.{self.service}.tls"

    def reload(self) -> None:
        """A fresh context from the files; raises ConfigError and keeps the old one."""
        try:
            self.context = checked_server_context(self.cert, self.key, self.key_prefix)
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

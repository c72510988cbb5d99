"""The certificate of a tls-terminate listener, renewed from its files on SIGHUP.

`ServerTls` holds the listener's ssl.SSLContext (lb.config.build.server_context)
and the certificate and key files it was made from. `reload()` makes a fresh
context from the same files (a renewed certificate written over the old one, as
certbot and other ACME clients do): handshakes that start after it present the
new certificate, connections already up keep theirs. A file that cannot be
loaded raises ConfigError, naming the service's key, and the old context stays.
TLS sessions of the old context (its session cache and ticket keys) are not
carried over: a client resuming one after a reload gets a full handshake.

It must not touch connections; it only configures TLS.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from lb.config.build import server_context
from lb.errors import ConfigError

__all__ = ["ServerTls"]


class ServerTls:
    """The context a tls-terminate service's listeners hand to new handshakes."""

    __slots__ = ("cert", "context", "key", "service")

    def __init__(self, service: str, cert: Path, key: Path) -> None:
        self.service = service
        self.cert = cert
        self.key = key
        self.context: ssl.SSLContext = server_context(cert, key)

    def reload(self) -> None:
        """A fresh context from the files; raises ConfigError and keeps the old one."""
        try:
            self.context = server_context(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                [
                    (
                        f"services.{self.service}.tls",
                        f"cannot load the certificate and key ({str(self.cert)!r}, "
                        f"{str(self.key)!r}): {exc}; the listener keeps the certificate "
                        "it had",
                    )
                ]
            ) from None

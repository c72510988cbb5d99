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

Session tickets (`tls = { tickets = ... }`): "farm", the default, seals them
with the key every node and worker derives from the farm secret for the hour
(lb.node.ticketkeys), so a client resumes its TLS session on any node of the
farm and any worker; `refresh_ticket_key(now)` installs the next hour's key
when the hour turns, and a reload's fresh context gets the hour's key too, so
tickets survive a certificate renewal. "worker" leaves OpenSSL's own random
key per process (resumption only on the worker that sealed the ticket), "off"
sends no stateless tickets (OpenSSL then resumes from the worker's own session
cache). Where the key cannot be handed to OpenSSL, `tls_ticket_key_unshared`
is logged once and the service works as "worker".

The context remembers the server name each client sent (its `sni_callback`
keeps it on the connection's ssl.SSLObject: under uvloop's SSL transport as
under asyncio's, the server side's `server_hostname` is None whatever the
client sent), and `connection_tls` reads a connection's version, cipher and
server name once, when its handshake is done, for its access lines. A server
name that is not ASCII (RFC 6066 wants an ASCII host name) fails the handshake
in Python's ssl before the callback runs, and ssl writes its UnicodeDecodeError
to sys.unraisablehook; `_quiet_bad_server_names` keeps that one error out of
stderr (one traceback per ClientHello anyone can send, amid the log lines).

It must not touch connections beyond reading their TLS; it only configures TLS.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

import structlog

from lb.clock import wall
from lb.config.build import checked_server_context
from lb.config.tlsfiles import certificate_not_after, expiry_warning
from lb.errors import ConfigError
from lb.node.accesslog import tls_fields
from lb.node.ticketkeys import install_ticket_key, ticket_epoch, ticket_key

log = structlog.get_logger("lb.node")

__all__ = ["ServerTls", "connection_tls"]

SNI_ATTRIBUTE = "lb_server_name"  # set on each ssl.SSLObject by the context's sni_callback


def _remember_server_name(
    ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext
) -> None:
    """The context's sni_callback: keep the name the client sent (None: it sent none)."""
    setattr(ssl_object, SNI_ATTRIBUTE, server_name)


# the hook `_quiet_bad_server_names` passes the other unraisable errors to
_default_unraisablehook: Callable[[sys.UnraisableHookArgs], object] | None = None


def _bad_server_name(unraisable: sys.UnraisableHookArgs) -> bool:
    """ssl's error for a ClientHello server name that is not ASCII (it decodes the
    name's bytes as ASCII before calling the sni_callback, and fails the handshake)."""
    exc = unraisable.exc_value
    return (
        isinstance(exc, UnicodeDecodeError)
        and exc.encoding == "ascii"
        and isinstance(unraisable.object, bytes)
        and unraisable.object == exc.object
    )


def _quiet_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    if not _bad_server_name(unraisable):
        assert _default_unraisablehook is not None
        _default_unraisablehook(unraisable)


def _quiet_bad_server_names() -> None:
    """Install `_quiet_unraisable` once, in front of the hook there was."""
    global _default_unraisablehook
    if _default_unraisablehook is None:
        _default_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _quiet_unraisable


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
    _quiet_bad_server_names()
    return context


class ServerTls:
    """The context a tls-terminate service's listeners hand to new handshakes."""

    __slots__ = ("cert", "context", "epoch", "farm", "key", "secret", "service", "tickets")

    def __init__(
        self,
        service: str,
        cert: Path,
        key: Path,
        tickets: str = "worker",
        farm: str = "",
        secret: bytes = b"",
    ) -> None:
        self.service = service
        self.cert = cert
        self.key = key
        self.tickets = tickets
        self.farm = farm
        self.secret = secret
        self.epoch: int | None = None  # the hour whose farm key the context holds
        self.context: ssl.SSLContext = self._fresh_context()
        self.warn_if_expired()

    def _fresh_context(self) -> ssl.SSLContext:
        context = _context(self.cert, self.key, self.key_prefix)
        if self.tickets == "off":
            context.options |= ssl.OP_NO_TICKET
        elif self.tickets == "farm":
            self.epoch = None
            self._install_farm_key(context, wall())
        return context

    def _install_farm_key(self, context: ssl.SSLContext, now: float) -> None:
        epoch = ticket_epoch(now)
        if install_ticket_key(context, ticket_key(self.secret, self.farm, self.service, epoch)):
            self.epoch = epoch
            return
        self.tickets = "worker"
        log.warning(
            "tls_ticket_key_unshared",
            service=self.service,
            reason="this Python's ssl context does not take a ticket key: each worker "
            "keeps OpenSSL's own, and a TLS session resumes only on the worker that made it",
        )

    def refresh_ticket_key(self, now: float) -> None:
        """A farm-keyed context takes the key of the hour Unix time `now` is in."""
        if self.tickets == "farm" and self.epoch != ticket_epoch(now):
            self._install_farm_key(self.context, now)

    @property
    def key_prefix(self) -> str:
        return f"services.{self.service}.tls"

    def reload(self) -> None:
        """A fresh context from the files; raises ConfigError and keeps the old one."""
        try:
            self.context = self._fresh_context()
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

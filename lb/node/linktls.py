"""TLS contexts of the links: mutual TLS 1.3 with the farm CA (docs/protocol.md, links).

Both sides present a certificate signed by the farm CA (`lb certs`); the name
in it (subjectAltName `lb://<farm>/<node>`) must be the node named in the
HELLO, which lb.link checks. Host names are not checked: the node name is.
`reload()` builds fresh contexts from the files (SIGHUP): new links use them,
links that are up keep theirs.

It must not speak the link protocol; it only configures TLS.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from lb.errors import ConfigError


def _context(purpose: int, ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = False  # the peer's node name is checked against its HELLO instead
    ctx.load_verify_locations(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _unreadable(paths: tuple[Path, ...]) -> str | None:
    """The first of `paths` that exists but cannot be read, with the reason; else None.
    (ssl's errors do not name the file.)"""
    for path in paths:
        try:
            with open(path, "rb"):
                pass
        except PermissionError as exc:
            return f"{str(path)!r}: {exc.strerror}"
        except OSError:
            continue
    return None


class LinkTls:
    """The server and client contexts of one node's links."""

    def __init__(self, directory: Path, node: str) -> None:
        self.directory = directory
        self.node = node
        self.server, self.client = self._build()

    def paths(self) -> tuple[Path, Path, Path]:
        d = self.directory
        return d / "ca.pem", d / f"{self.node}.pem", d / f"{self.node}.key"

    def _build(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        ca, cert, key = self.paths()
        try:
            return (
                _context(ssl.PROTOCOL_TLS_SERVER, ca, cert, key),
                _context(ssl.PROTOCOL_TLS_CLIENT, ca, cert, key),
            )
        except (OSError, ssl.SSLError) as exc:
            unreadable = _unreadable((ca, cert, key))
            if unreadable is not None:
                # the files are there: making them again is not the remedy
                raise ConfigError(
                    [
                        (
                            "farm.link_certs",
                            f"cannot read the link certificates of node {self.node!r}: "
                            f"{unreadable}; they must be readable by the user lb runs as "
                            f"(uid {os.geteuid()})",
                        )
                    ]
                ) from None
            raise ConfigError(
                [
                    (
                        "farm.link_certs",
                        f"cannot load the link certificates of node {self.node!r} "
                        f"({ca.name}, {cert.name}, {key.name} in {str(self.directory)!r}): "
                        f"{exc}; make them with "
                        f"`lb certs {self.directory} --farm FARM --nodes {self.node}`",
                    )
                ]
            ) from None

    def reload(self) -> None:
        """Fresh contexts from the files; raises ConfigError and keeps the old ones."""
        self.server, self.client = self._build()


__all__ = ["LinkTls"]

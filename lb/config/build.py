"""The runtime objects a service's config describes: extractor chain and TLS contexts.

The one builder of each: config validation calls them to prove a farm file
(a bad option or certificate is an error at `check-config`), and the node
calls the same functions to get the objects it serves with, so what was
proven is what runs. An unknown extractor option gets a did-you-mean here.

Builds objects only; it opens no socket and loads no file beyond the PEM
files it is given.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable
from pathlib import Path

from lb.config.model import ExtractorSpec
from lb.config.spec import did_you_mean
from lb.config.tlsfiles import pem_problems
from lb.errors import ConfigError
from lb.extract.api import Extractor, ExtractorContext, HomeCookieVerifier
from lb.extract.registry import build_chain

__all__ = ["app_context", "checked_server_context", "extractor_chain", "server_context"]

_UNKNOWN_OPTION = re.compile(r"unknown option \(known options: ([^)]*)\)")


def extractor_chain(
    specs: Iterable[ExtractorSpec],
    cookie_name: str,
    key_prefix: str,
    keyring: HomeCookieVerifier | None = None,
) -> list[Extractor]:
    """One extractor per spec, in order; ConfigError keyed `key_prefix[i]...` otherwise.

    With `keyring` (a running node), `home-cookie` answers only for cookies that
    verify, so a bad one lets the rest of the chain decide.
    """
    specs = tuple(specs)
    try:
        return build_chain(
            [(spec.kind, spec.options) for spec in specs],
            ExtractorContext(home_cookie_name=cookie_name, home_cookie_keyring=keyring),
            key_prefix=key_prefix,
        )
    except ConfigError as exc:
        raise ConfigError([_suggest(key_prefix, k, m) for k, m in exc.errors]) from None


def _suggest(key_prefix: str, key: str, message: str) -> tuple[str, str]:
    """Add a did-you-mean to an extractor's "unknown option (known options: ...)"."""
    match = _UNKNOWN_OPTION.fullmatch(message)
    where = re.fullmatch(re.escape(key_prefix) + r"\[\d+\]\.(.+)", key, re.DOTALL)
    if match is None or where is None:
        return key, message
    option = where.group(1)
    known = [name.strip() for name in match.group(1).split(",") if name.strip() != "none"]
    close = did_you_mean(option, known)
    if close is None:
        return key, message
    return key, f"{message}; did you mean {close!r}?"


class EncryptedKeyError(ssl.SSLError):
    """The key file is encrypted: lb does not ask for a passphrase (no prompt on a tty)."""


def _no_passphrase() -> str:
    raise EncryptedKeyError("the private key is encrypted and lb has no passphrase for it")


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The listener context of a tls-terminate service: TLS 1.2+, ALPN http/1.1.

    Raises OSError or ssl.SSLError as ssl says them (`checked_server_context` says
    which file is wrong and why); an encrypted key is an ssl.SSLError, never a prompt.
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key, password=_no_passphrase)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def checked_server_context(cert: Path, key: Path, key_prefix: str) -> ssl.SSLContext:
    """`server_context`, or a ConfigError keyed `<key_prefix>.cert` / `<key_prefix>.key`
    saying what is wrong with each file (lb.config.tlsfiles); `<key_prefix>` with ssl's
    own words when the files look right to cryptography but not to ssl."""
    try:
        return server_context(cert, key)
    except (OSError, ssl.SSLError) as exc:
        problems = pem_problems(cert, key)
        if not problems:
            raise ConfigError(
                [(key_prefix, f"cannot load the certificate and key: {exc}")]
            ) from None
        raise ConfigError([(f"{key_prefix}.{which}", why) for which, why in problems]) from None


def app_context(ca: Path | None) -> ssl.SSLContext:
    """The client context towards the local application (verified only against `ca`)."""
    if ca is not None:
        ctx = ssl.create_default_context(cafile=str(ca))
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx

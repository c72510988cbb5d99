"""What is wrong with a certificate and key file pair, said per file.

ssl.SSLContext.load_cert_chain answers most bad files with "[SSL] PEM lib" and
does not say which of the two files it means. When it fails, `pem_problems`
reads the two files again with the `cryptography` package and says, for the
certificate file ("cert") and the key file ("key"), what is wrong: the file
cannot be read, it holds no PEM certificate or no PEM private key (the two
files swapped is said as such), a block that does not parse, an encrypted key
(lb runs unattended and cannot ask for a passphrase), or a key that is not the
certificate's (OpenSSL's "key values mismatch"). The ssl context stays what is
served: these readings only explain a failure.

`certificate_not_after` is the leaf certificate's notAfter and `expiry_warning`
what to say when it passed, for the callers that read the clock (`lb
check-config`, the node at start and on SIGHUP): an expired certificate still
loads, as nginx and HAProxy load one, and they warn.

Reads the two PEM files it is given; no socket, no clock.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

__all__ = ["certificate_not_after", "expiry_warning", "pem_problems"]

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_CERT_LABELS = (b"CERTIFICATE", b"TRUSTED CERTIFICATE", b"X509 CERTIFICATE")
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path) -> bytes | str:
    """The file's bytes, or why it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        return f"cannot read {str(path)!r}: {exc.strerror or exc}"


def _labels(data: bytes) -> set[bytes]:
    return {m.group(1) for m in _BEGIN.finditer(data)}


def _blocks(data: bytes, labels: tuple[bytes, ...]) -> list[bytes]:
    return [m.group(0) for m in _BLOCK.finditer(data) if m.group(1) in labels]


def _certificate(path: Path, data: bytes) -> x509.Certificate | str:
    """The leaf (first) certificate of the file, or what is wrong with the file."""
    where = repr(str(path))
    labels = _labels(data)
    if not labels & set(_CERT_LABELS):
        message = f"{where} holds no PEM certificate (a -----BEGIN CERTIFICATE----- block)"
        if any(label.endswith(b"PRIVATE KEY") for label in labels):
            message += "; it holds a private key"
        elif not data.strip():
            message += "; the file is empty"
        return message
    blocks = _blocks(data, (b"CERTIFICATE",))
    try:
        if not blocks:
            raise ValueError("the block has no END line or is not a plain CERTIFICATE block")
        return x509.load_pem_x509_certificates(b"\n".join(blocks))[0]
    except ValueError as exc:
        return f"{where} has a CERTIFICATE block that cannot be read as a certificate: {exc}"


def _encrypted(path: Path) -> str:
    return (
        f"{str(path)!r} holds an encrypted private key: lb runs unattended and cannot ask "
        f"for its passphrase; write it decrypted (openssl pkey -in {path.name} -out "
        f"{path.stem}-plain{path.suffix}), readable by lb's user only"
    )


def _private_key(path: Path, data: bytes) -> bytes | str:
    """The SubjectPublicKeyInfo (DER) of the file's private key, or what is wrong with it."""
    where = repr(str(path))
    labels = _labels(data)
    if b"ENCRYPTED PRIVATE KEY" in labels or b"Proc-Type: 4,ENCRYPTED" in data:
        return _encrypted(path)
    key_labels = tuple(label for label in labels if label.endswith(b"PRIVATE KEY"))
    if not key_labels:
        message = f"{where} holds no PEM private key (a -----BEGIN PRIVATE KEY----- block)"
        if labels & set(_CERT_LABELS):
            message += "; it holds a certificate: are cert and key swapped?"
        elif not data.strip():
            message += "; the file is empty"
        return message
    blocks = _blocks(data, key_labels)
    try:
        if not blocks:
            raise ValueError("the block has no END line")
        key = serialization.load_pem_private_key(blocks[0], password=None)
    except TypeError:  # it needs a password
        return _encrypted(path)
    except (ValueError, UnsupportedAlgorithm) as exc:
        return f"{where} has a PRIVATE KEY block that cannot be read as a private key: {exc}"
    return key.public_key().public_bytes(*_SPKI)


def pem_problems(cert: Path, key: Path) -> list[tuple[str, str]]:
    """What is wrong with the pair, as ("cert" | "key", message); [] when nothing
    is found (then the caller says what ssl said)."""
    problems: list[tuple[str, str]] = []
    cert_data, key_data = _read(cert), _read(key)
    leaf: x509.Certificate | str | None = None
    spki: bytes | str | None = None
    if isinstance(cert_data, str):
        problems.append(("cert", cert_data))
    else:
        leaf = _certificate(cert, cert_data)
        if isinstance(leaf, str):
            problems.append(("cert", leaf))
    if isinstance(key_data, str):
        problems.append(("key", key_data))
    else:
        spki = _private_key(key, key_data)
        if isinstance(spki, str):
            problems.append(("key", spki))
    if (
        isinstance(leaf, x509.Certificate)
        and isinstance(spki, bytes)
        and leaf.public_key().public_bytes(*_SPKI) != spki
    ):
        problems.append(
            (
                "key",
                f"{str(key)!r} does not match the certificate in {str(cert)!r} (OpenSSL: "
                "key values mismatch): give the key the certificate was issued for",
            )
        )
    return problems


def certificate_not_after(cert: Path) -> datetime.datetime | None:
    """The notAfter (UTC) of the file's first certificate; None when it cannot be read."""
    data = _read(cert)
    if isinstance(data, str):
        return None
    leaf = _certificate(cert, data)
    if isinstance(leaf, str):
        return None
    return leaf.not_valid_after_utc


def expiry_warning(cert: Path, now: float) -> str | None:
    """What to warn of when the file's certificate expired at `now` (seconds since the
    epoch), else None: it is served all the same, as nginx and HAProxy serve one."""
    not_after = certificate_not_after(cert)
    if not_after is None or not_after.timestamp() >= now:
        return None
    return (
        f"the certificate in {str(cert)!r} expired on {not_after:%Y-%m-%d %H:%M:%S} UTC (its "
        "notAfter); lb serves it, as nginx and HAProxy do, but clients refuse it: renew it"
    )

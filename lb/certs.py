"""`lb certs`: a farm CA and one certificate per node, for mutual TLS on links.

Layout of the directory (the farm file's `farm.link_certs`):

    ca.pem          the farm CA certificate (every node needs it)
    ca.key          the farm CA's private key (keep it off the nodes if you can)
    <node>.pem      the node's certificate, signed by the CA
    <node>.key      the node's private key (only that node needs it)

A node certificate names its node in a subjectAltName URI `lb://<farm>/<node>`;
a link is accepted only when that name equals the node named in the peer's
HELLO. Node certificates are short-lived (30 days by default): renewing is
running the same command again for the node (the CA stays), then SIGHUP to the
node, which reloads its link certificates without dropping a link.

This module writes files; it never opens sockets. It is an edge of the
program (used by lb.cli), like lb.demo.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
NODE_DAYS = 30
URI_SCHEME = "lb://"


def node_uri(farm: str, node: str) -> str:
    """The subjectAltName URI that names `node` of `farm` in its certificate."""
    return f"{URI_SCHEME}{farm}/{node}"


@dataclass(frozen=True)
class Issued:
    """What `ensure_certs` did: the files it wrote and the nodes it (re)issued."""

    directory: Path
    ca_created: bool
    nodes: tuple[str, ...]


def _write(path: Path, data: bytes, private: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # a running node never reads a half-written file


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if not cert_path.exists() or not key_path.exists():
        return None
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an EC private key")
    return cert, key


def make_ca(
    farm: str, now: datetime.datetime, days: int = CA_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"lb farm CA {farm}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_node_cert(
    farm: str,
    node: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    now: datetime.datetime,
    days: int = NODE_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for `node`, usable as TLS client and server, signed by the farm CA."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(node_uri(farm, node))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def ensure_certs(
    directory: Path,
    farm: str,
    nodes: list[str],
    *,
    days: int = NODE_DAYS,
    now: datetime.datetime | None = None,
) -> Issued:
    """Make the farm CA if the directory has none, then (re)issue each node's certificate."""
    now = now or datetime.datetime.now(datetime.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    ca = load_ca(directory)
    created = ca is None
    if ca is None:
        ca = make_ca(farm, now)
        _write(directory / "ca.key", _key_pem(ca[1]), private=True)
        _write(directory / "ca.pem", ca[0].public_bytes(serialization.Encoding.PEM), private=False)
    for node in nodes:
        cert, key = make_node_cert(farm, node, ca, now, days)
        _write(directory / f"{node}.key", _key_pem(key), private=True)
        _write(directory / f"{node}.pem", cert.public_bytes(serialization.Encoding.PEM), False)
    return Issued(directory, created, tuple(nodes))


__all__ = ["Issued", "ensure_certs", "load_ca", "make_ca", "make_node_cert", "node_uri"]

"""SIGHUP renews the certificate of a tls-terminate listener from its files.

An operator renews a certificate by writing the new one over the old files (as
certbot and other ACME clients do) and sending SIGHUP, as with nginx's reload.
A handshake after the reload must present the new certificate, in every
worker; a connection that was up before it goes on with its own. A file that
cannot be loaded is an error by key in the log, and the listener goes on with
the certificate it had.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.farm import DEFAULT_SERVICES, TLS_TERMINATE_SERVICE, Farm, make_cert
from tests.support.pem import write_self_signed
from tests.support.wait import eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
]

SERVICES = {
    "web": DEFAULT_SERVICES["web"],
    "secure": TLS_TERMINATE_SERVICE,
}


def client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def served_cert(farm: Farm, node: str) -> bytes:
    """The certificate (DER) a new handshake with `node`'s tls-terminate listener gets."""
    raw = socket.create_connection(farm.addr(node, "secure"), timeout=10)
    with client_context().wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def der_of(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def get(tls: ssl.SSLSocket) -> bytes:
    """One keep-alive request on `tls`: the status line of its answer."""
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = tls.recv(65536)
        assert chunk
        body += chunk
    return head.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_serves_a_certificate_renewed_in_place(
    make_farm: Callable[..., Farm], tmp_path: Path, workers: int
) -> None:
    certdir = tmp_path / "live"
    certdir.mkdir()
    cert, key = make_cert(certdir)
    farm = make_farm(
        nodes=("a", "b"),
        services=SERVICES,
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
        workers=workers,
    )
    old = der_of(cert)
    assert served_cert(farm, "a") == old
    held = client_context().wrap_socket(
        socket.create_connection(farm.addr("a", "secure"), timeout=10),
        server_hostname="localhost",
    )
    try:
        assert get(held) == b"HTTP/1.1 200 OK"

        renewed = tmp_path / "renewed"
        renewed.mkdir()
        new_cert, new_key = make_cert(renewed)
        shutil.copyfile(new_cert, cert)
        shutil.copyfile(new_key, key)
        new = der_of(cert)
        assert new != old
        # to the node's process, as an operator does (with workers, its supervisor
        # passes the signal on to each worker)
        os.kill(farm.pid("a"), signal.SIGHUP)
        eventually(
            lambda: len(farm.events("a", "farm_reloaded")) == workers,
            timeout=10.0,
            what="every worker of a re-read its farm file",
        )
        # every new handshake (whichever worker takes it) presents the new certificate
        assert {served_cert(farm, "a") for _ in range(8)} == {new}
        assert served_cert(farm, "b") == old  # b got no SIGHUP
        assert len(farm.events("a", "tls_certs_reloaded")) == workers
        # the connection made before the reload goes on
        assert get(held) == b"HTTP/1.1 200 OK"

        # a file that cannot be loaded: an error by key, and the listener keeps serving
        cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
        os.kill(farm.pid("a"), signal.SIGHUP)
        eventually(
            lambda: [
                e
                for e in farm.events("a", "reload_config_error")
                if e["key"] == "services[1].tls.cert"
            ],
            timeout=10.0,
            what="a logged the bad certificate file by key",
        )
        assert {served_cert(farm, "a") for _ in range(4)} == {new}
        assert get(held) == b"HTTP/1.1 200 OK"
    finally:
        held.close()


def test_sighup_to_a_key_of_another_certificate_keeps_the_old_one(
    make_farm: Callable[..., Farm], tmp_path: Path
) -> None:
    """The operator wrote a new key but not its certificate (or the other way round):
    the reload says which file and why, and the listener goes on with the pair it had."""
    certdir = tmp_path / "live"
    certdir.mkdir()
    cert, key = make_cert(certdir)
    farm = make_farm(
        nodes=("a",),
        services=SERVICES,
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
    )
    old = der_of(cert)
    assert served_cert(farm, "a") == old
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = make_cert(other)
    shutil.copyfile(other_key, key)
    os.kill(farm.pid("a"), signal.SIGHUP)
    errors = eventually(
        lambda: [
            e for e in farm.events("a", "reload_config_error") if e["key"] == "services[1].tls.key"
        ],
        timeout=10.0,
        what="a logged the key that does not match its certificate, by key",
    )
    assert "does not match the certificate" in errors[0]["error"]
    assert not farm.events("a", "farm_reloaded")
    assert {served_cert(farm, "a") for _ in range(4)} == {old}


def write_expired_cert(workdir: Path) -> tuple[Path, Path]:
    """A self-signed localhost certificate whose notAfter is 2021-01-01 (an expired one,
    which the openssl CLI of some systems cannot make)."""
    return write_self_signed(
        workdir,
        datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
        datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC),
    )


def test_an_expired_certificate_is_served_with_a_warning(
    make_farm: Callable[..., Farm], tmp_path: Path
) -> None:
    """As nginx and HAProxy do: a lapsed renewal does not take the service down (a
    client that checks the certificate refuses it); the node warns at start and at
    each reload until the certificate is renewed."""
    certdir = tmp_path / "live"
    certdir.mkdir()
    cert, key = write_expired_cert(certdir)
    farm = make_farm(
        nodes=("a",),
        services=SERVICES,
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
    )
    assert served_cert(farm, "a") == der_of(cert)
    [warning] = farm.events("a", "tls_cert_expired")
    assert warning["level"] == "warning"
    assert warning["key"] == "services.secure.tls.cert"
    assert warning["not_after"].startswith("2021-01-01")

    renewed = tmp_path / "renewed"
    renewed.mkdir()
    new_cert, new_key = make_cert(renewed)
    shutil.copyfile(new_cert, cert)
    shutil.copyfile(new_key, key)
    os.kill(farm.pid("a"), signal.SIGHUP)
    eventually(
        lambda: farm.events("a", "tls_certs_reloaded"),
        timeout=10.0,
        what="a reloaded the renewed certificate",
    )
    assert served_cert(farm, "a") == der_of(cert)
    assert len(farm.events("a", "tls_cert_expired")) == 1  # none for the renewed one

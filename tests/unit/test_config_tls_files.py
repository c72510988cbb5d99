"""Config: a tls-terminate service's certificate and key files, each problem said by key.

ssl.SSLContext.load_cert_chain says only "[SSL] PEM lib" for most bad files, without
saying which file; the check names the file (`services[i].tls.cert` or `.tls.key`)
and what is wrong with it. The files are real PEM files written here (cryptography
makes them, as a CA or openssl would); an expired certificate loads (as nginx and
HAProxy load one) and `lb check-config` warns about it.
"""

from __future__ import annotations

import copy
import datetime
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from lb.config import parse_config
from lb.errors import ConfigError
from tests.support.pem import cert_pem, key_pem, make_key

LB = Path(sys.executable).parent / "lb"
SECRET = "s" * 40
BASE: dict[str, Any] = {
    "farm": {"name": "f1", "secret": SECRET, "link_security": "plaintext"},
    "services": [{"name": "web", "protocol": "tls-terminate"}],
    "nodes": [
        {
            "name": "a",
            "forward": "127.0.0.1:7101",
            "listen": {"web": "127.0.0.1:8101"},
            "apps": {"web": "127.0.0.1:9101"},
        }
    ],
}
UTC = datetime.UTC


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of good and bad certificate and key files."""
    d = tmp_path_factory.mktemp("pem")
    key, other = make_key(), make_key()
    now = datetime.datetime.now(UTC)
    (d / "cert.pem").write_bytes(
        cert_pem(key, now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    )
    (d / "key.pem").write_bytes(key_pem(key))
    (d / "other-key.pem").write_bytes(key_pem(other))
    (d / "encrypted-key.pem").write_bytes(key_pem(key, b"secret passphrase"))
    # the traditional (OpenSSL 1.x "openssl genrsa -aes256") form of an encrypted key
    (d / "legacy-encrypted-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"secret passphrase"),
        )
    )
    (d / "expired.pem").write_bytes(
        cert_pem(
            key,
            datetime.datetime(2020, 1, 1, tzinfo=UTC),
            datetime.datetime(2021, 1, 1, tzinfo=UTC),
        )
    )
    (d / "garbage.pem").write_text("this is not PEM at all\n")
    (d / "broken-cert.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    )
    (d / "empty.pem").write_bytes(b"")
    return d


def tls(cert: str, key: str) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["services"][0]["tls"] = {"cert": cert, "key": key}
    return data


def errors(cert: str, key: str, base_dir: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(tls(cert, key), base_dir=base_dir)
    return dict(info.value.errors)


def test_good_files_load(pem: Path) -> None:
    svc = parse_config(tls("cert.pem", "key.pem"), base_dir=pem).services["web"]
    assert (svc.tls_cert, svc.tls_key) == (pem / "cert.pem", pem / "key.pem")


def test_a_cert_file_without_a_certificate(pem: Path) -> None:
    for name in ("garbage.pem", "empty.pem"):
        found = errors(name, "key.pem", pem)
        assert set(found) == {"services[0].tls.cert"}, found
        assert "no PEM certificate" in found["services[0].tls.cert"]
        assert "PEM lib" not in found["services[0].tls.cert"]


def test_a_certificate_block_that_does_not_parse(pem: Path) -> None:
    found = errors("broken-cert.pem", "key.pem", pem)
    assert set(found) == {"services[0].tls.cert"}, found
    assert "cannot be read as a certificate" in found["services[0].tls.cert"]


def test_a_key_file_without_a_private_key(pem: Path) -> None:
    found = errors("cert.pem", "garbage.pem", pem)
    assert set(found) == {"services[0].tls.key"}, found
    assert "no PEM private key" in found["services[0].tls.key"]


def test_swapped_files_say_so(pem: Path) -> None:
    found = errors("key.pem", "cert.pem", pem)
    assert set(found) == {"services[0].tls.cert", "services[0].tls.key"}, found
    assert "no PEM certificate" in found["services[0].tls.cert"]
    assert "private key" in found["services[0].tls.cert"]  # what it holds instead
    assert "no PEM private key" in found["services[0].tls.key"]
    assert "swapped" in found["services[0].tls.key"]


@pytest.mark.parametrize("name", ["encrypted-key.pem", "legacy-encrypted-key.pem"])
def test_an_encrypted_key_is_refused_without_a_prompt(pem: Path, name: str) -> None:
    found = errors("cert.pem", name, pem)
    assert set(found) == {"services[0].tls.key"}, found
    assert "encrypted" in found["services[0].tls.key"]
    assert "passphrase" in found["services[0].tls.key"]


def test_a_key_of_another_certificate(pem: Path) -> None:
    found = errors("cert.pem", "other-key.pem", pem)
    assert set(found) == {"services[0].tls.key"}, found
    assert "does not match the certificate" in found["services[0].tls.key"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_key_file(tmp_path: Path, pem: Path) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_bytes((pem / name).read_bytes())
    (tmp_path / "key.pem").chmod(0)
    found = errors("cert.pem", "key.pem", tmp_path)
    assert set(found) == {"services[0].tls.key"}, found
    assert "cannot read" in found["services[0].tls.key"]


def test_an_expired_certificate_loads(pem: Path) -> None:
    """As nginx and HAProxy do: a lapsed renewal must not stop a node from starting."""
    svc = parse_config(tls("expired.pem", "key.pem"), base_dir=pem).services["web"]
    assert svc.tls_cert == pem / "expired.pem"


def farm_file(directory: Path, pem: Path, cert: str, key: str) -> Path:
    path = directory / "farm.toml"
    path.write_text(
        f'[farm]\nname = "f"\nsecret = "{SECRET}"\nlink_security = "plaintext"\n'
        '[[services]]\nname = "web"\nprotocol = "tls-terminate"\n'
        f'tls = {{ cert = "{pem / cert}", key = "{pem / key}" }}\n'
        '[[nodes]]\nname = "a"\nforward = "127.0.0.1:7101"\n'
        'listen = { web = "127.0.0.1:8101" }\napps = { web = "127.0.0.1:9101" }\n'
    )
    return path


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LB), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_check_config_lists_each_bad_file_by_key(tmp_path: Path, pem: Path) -> None:
    done = check_config(farm_file(tmp_path, pem, "cert.pem", "other-key.pem"))
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert lines[0] == f"{tmp_path / 'farm.toml'}: 1 error(s)"
    assert lines[1].startswith("  services[0].tls.key: ")
    assert "does not match the certificate" in lines[1]


def test_check_config_warns_of_an_expired_certificate(tmp_path: Path, pem: Path) -> None:
    done = check_config(farm_file(tmp_path, pem, "expired.pem", "key.pem"))
    assert done.returncode == 0, done
    assert done.stdout.startswith("ok: farm 'f'")
    warning = [line for line in done.stderr.splitlines() if "services[0].tls.cert" in line]
    assert len(warning) == 1, done.stderr
    assert "expired" in warning[0]
    assert "2021-01-01" in warning[0]  # its notAfter

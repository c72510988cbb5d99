"""Config: TLS services (certificate files proven at load time) and the TLS contexts built once."""

from __future__ import annotations

import copy
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lb.config import parse_config
from lb.config.build import app_context, server_context
from lb.errors import ConfigError

SECRET = "s" * 40
BASE: dict[str, Any] = {
    "farm": {"name": "f1", "secret": SECRET, "link_security": "plaintext"},
    "services": [{"name": "web", "protocol": "http"}],
    "nodes": [
        {
            "name": n,
            "forward": f"127.0.0.1:710{i}",
            "listen": {"web": f"127.0.0.1:810{i}"},
            "apps": {"web": f"127.0.0.1:910{i}"},
        }
        for i, n in enumerate(["a", "b"], start=1)
    ],
}


def errors(data: dict[str, Any], base_dir: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=base_dir)
    return dict(info.value.errors)


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make a certificate")
    d = tmp_path_factory.mktemp("pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "1",
         "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    (d / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    return d


def with_service(**service: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["services"][0].update(service)
    return data


def test_tls_terminate_loads_its_certificate(pem: Path) -> None:
    cfg = parse_config(
        with_service(protocol="tls-terminate", tls={"cert": "cert.pem", "key": "key.pem"}),
        base_dir=pem,
    )
    svc = cfg.services["web"]
    assert (svc.tls_cert, svc.tls_key) == (pem / "cert.pem", pem / "key.pem")
    assert svc.speaks_http and not svc.app_tls
    assert [e.kind for e in svc.extractors] == ["home-cookie"]


def test_bad_certificate_files_are_clear_errors(pem: Path) -> None:
    missing = errors(
        with_service(protocol="tls-terminate", tls={"cert": "nope.pem", "key": "key.pem"}), pem
    )
    assert "no such file" in missing["services[0].tls.cert"]
    garbage = errors(
        with_service(protocol="tls-terminate", tls={"cert": "garbage.pem", "key": "key.pem"}), pem
    )
    assert set(garbage) == {"services[0].tls.cert"}
    assert "cannot be read as a certificate" in garbage["services[0].tls.cert"]
    absent = errors(with_service(protocol="tls-terminate"), pem)
    assert "required for tls-terminate" in absent["services[0].tls"]


def test_tls_keys_only_on_tls_terminate(pem: Path) -> None:
    found = errors(with_service(tls={"cert": "cert.pem", "key": "key.pem"}, app_tls=True), pem)
    assert set(found) == {"services[0].tls", "services[0].app_tls"}


def test_passthrough_defaults_to_ticket_then_session_id(tmp_path: Path) -> None:
    cfg = parse_config(with_service(protocol="tls-passthrough"), base_dir=tmp_path)
    assert [e.kind for e in cfg.services["web"].extractors] == ["tls-ticket", "tls-session-id"]
    assert not cfg.services["web"].speaks_http


def test_a_bad_protocol_does_not_also_blame_the_tls_keys(pem: Path) -> None:
    found = errors(with_service(protocol="tls-terminat", tls={"cert": "cert.pem"}), pem)
    assert set(found) == {"services[0].protocol"}


def test_tls_table_keys(pem: Path) -> None:
    found = errors(
        with_service(protocol="tls-terminate", tls={"cert": "cert.pem", "kye": "key.pem"}), pem
    )
    assert found["services[0].tls.kye"] == "unknown key; did you mean 'key'?"
    assert "required" in found["services[0].tls.key"]


def test_session_tickets_are_farm_keyed_unless_told(pem: Path) -> None:
    files = {"cert": "cert.pem", "key": "key.pem"}
    cfg = parse_config(with_service(protocol="tls-terminate", tls=files), base_dir=pem)
    assert cfg.services["web"].tls_tickets == "farm"
    for mode in ("worker", "off"):
        tls = {**files, "tickets": mode}
        cfg = parse_config(with_service(protocol="tls-terminate", tls=tls), base_dir=pem)
        assert cfg.services["web"].tls_tickets == mode
    found = errors(with_service(protocol="tls-terminate", tls={**files, "tickets": "on"}), pem)
    assert set(found) == {"services[0].tls.tickets"}
    assert "farm, worker, off" in found["services[0].tls.tickets"], found


def test_app_tls_ca_is_loaded(pem: Path) -> None:
    cfg = parse_config(
        with_service(
            protocol="tls-terminate",
            tls={"cert": "cert.pem", "key": "key.pem"},
            app_tls=True,
            app_tls_ca="cert.pem",
        ),
        base_dir=pem,
    )
    svc = cfg.services["web"]
    assert (svc.app_tls, svc.app_tls_ca) == (True, pem / "cert.pem")
    bad = errors(
        with_service(
            protocol="tls-terminate",
            tls={"cert": "cert.pem", "key": "key.pem"},
            app_tls=True,
            app_tls_ca="garbage.pem",
        ),
        pem,
    )
    assert set(bad) == {"services[0].app_tls_ca"}
    assert "cannot load the CA file" in bad["services[0].app_tls_ca"]


def test_server_context_is_what_the_listener_serves(pem: Path) -> None:
    ctx = server_context(pem / "cert.pem", pem / "key.pem")
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        server_context(pem / "garbage.pem", pem / "key.pem")


def test_app_context_verifies_only_with_a_ca(pem: Path) -> None:
    plain = app_context(None)
    assert plain.verify_mode == ssl.CERT_NONE and not plain.check_hostname
    verified = app_context(pem / "cert.pem")
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname


def test_app_tls_without_a_ca_needs_an_explicit_app_tls_verify_false(pem: Path) -> None:
    base = {"protocol": "tls-terminate", "tls": {"cert": "cert.pem", "key": "key.pem"}}
    found = errors(with_service(**base, app_tls=True), pem)
    assert set(found) == {"services[0].app_tls_verify"}
    assert "app_tls_ca" in found["services[0].app_tls_verify"]
    cfg = parse_config(with_service(**base, app_tls=True, app_tls_verify=False), base_dir=pem)
    assert cfg.services["web"].app_tls and cfg.services["web"].app_tls_ca is None
    both = errors(
        with_service(**base, app_tls=True, app_tls_ca="cert.pem", app_tls_verify=False), pem
    )
    assert set(both) == {"services[0].app_tls_verify"}
    assert set(errors(with_service(app_tls_verify=False), pem)) == {"services[0].app_tls_verify"}

"""Config: TLS services (certificate files proven at load time) and membership timers."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lb.config import parse_config
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
    assert "cannot load the certificate" in garbage["services[0].tls"]
    absent = errors(with_service(protocol="tls-terminate"), pem)
    assert "required for tls-terminate" in absent["services[0].tls"]


def test_tls_keys_only_on_tls_terminate(pem: Path) -> None:
    found = errors(with_service(tls={"cert": "cert.pem", "key": "key.pem"}, app_tls=True), pem)
    assert set(found) == {"services[0].tls", "services[0].app_tls"}


def test_passthrough_defaults_to_ticket_then_session_id(tmp_path: Path) -> None:
    cfg = parse_config(with_service(protocol="tls-passthrough"), base_dir=tmp_path)
    assert [e.kind for e in cfg.services["web"].extractors] == ["tls-ticket", "tls-session-id"]
    assert not cfg.services["web"].speaks_http


@pytest.mark.parametrize(
    ("ping", "dead", "suspect"),
    [(0.5, 2.5, 1.0), (0.2, 1.0, 0.4), (1.0, 3.0, 2.0), (1.0, 1.5, 1.25)],
)
def test_suspect_after_is_derived_between_ping_and_dead(
    tmp_path: Path, ping: float, dead: float, suspect: float
) -> None:
    data = copy.deepcopy(BASE)
    data["limits"] = {"ping_interval": ping, "dead_after": dead}
    limits = parse_config(data, base_dir=tmp_path).limits
    assert limits.suspect_after == pytest.approx(suspect)
    assert ping < limits.suspect_after < dead


def test_suspect_after_outside_the_window_is_refused(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["limits"] = {"ping_interval": 0.5, "dead_after": 2.5, "suspect_after": 3.0}
    assert "between limits.ping_interval" in errors(data, tmp_path)["limits.suspect_after"]

"""A node that cannot start says which address failed, and exits."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.farm import TLS_TERMINATE_SERVICE, Farm, make_cert

pytestmark = pytest.mark.integration

NO_SUCH_HOST = "no-such-host.invalid"  # RFC 6761: never resolves


def run_node(config: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "lb", "run", "--config", str(config), "--node", "a"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_a_forward_host_that_does_not_resolve_is_named(tmp_path: Path) -> None:
    farm = Farm(tmp_path, nodes=("a",), link_security="plaintext")
    port = farm.ports["a"].forward
    text = farm.config_path.read_text()
    farm.config_path.write_text(
        text.replace(f'forward = "127.0.0.1:{port}"', f'forward = "{NO_SUCH_HOST}:{port}"')
    )
    code, out = run_node(farm.config_path)
    assert code == 1, (code, out[-1500:])
    assert "node_start_failed" in out and f"forward {NO_SUCH_HOST}:{port}" in out, out[-1500:]


def test_a_listen_host_that_does_not_resolve_is_named(tmp_path: Path) -> None:
    farm = Farm(tmp_path, nodes=("a",), link_security="plaintext")
    port = farm.ports["a"].listen["web"]
    text = farm.config_path.read_text()
    farm.config_path.write_text(
        text.replace(f'web = "127.0.0.1:{port}"', f'web = "{NO_SUCH_HOST}:{port}"')
    )
    code, out = run_node(farm.config_path)
    assert code == 1, (code, out[-1500:])
    assert "node_start_failed" in out and f"listen web {NO_SUCH_HOST}:{port}" in out, out[-1500:]


def test_a_key_of_another_certificate_is_named_by_key(tmp_path: Path) -> None:
    """`lb run` checks the farm file as `lb check-config` does: which file, and why."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    cert, _ = make_cert(tmp_path / "one")
    _, other_key = make_cert(tmp_path / "two")
    farm = Farm(
        tmp_path / "farm",
        nodes=("a",),
        link_security="plaintext",
        services={"secure": TLS_TERMINATE_SERVICE},
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{other_key}" }}',)},
    )
    code, out = run_node(farm.config_path)
    assert code == 2, (code, out[-1500:])
    assert f"{farm.config_path}: 1 error(s)" in out, out[-1500:]
    line = next(line for line in out.splitlines() if "services[0].tls.key: " in line)
    assert "does not match the certificate" in line, out[-1500:]

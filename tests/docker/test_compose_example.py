"""The farm file of examples/compose, checked without Docker.

It is a valid farm once `lb certs` made its link certificates: mutual TLS
links, peers found by their advertised container names.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lb.config import load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "compose" / "farm.toml"


def test_example_is_a_valid_farm(tmp_path: Path) -> None:
    from lb.certs import ensure_certs

    shutil.copy(EXAMPLE, tmp_path / "farm.toml")
    ensure_certs(tmp_path / "certs", "compose", ["a", "b", "c"])
    config = load_config(tmp_path / "farm.toml")
    assert config.link_security == "mtls"
    assert sorted(config.nodes) == ["a", "b", "c"]
    for name, node in config.nodes.items():
        assert str(node.apps["web"]) == f"app-{name}:9000"
        assert node.workers == 1
        assert str(node.forward_advertised) == f"lb-{name}:{node.forward.port}"
        # the image's HEALTHCHECK asks the admin listener, on the container's loopback
        assert node.admin is not None and node.admin.host == "127.0.0.1"

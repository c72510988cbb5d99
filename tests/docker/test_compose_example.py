"""The farm file of examples/compose, and its rewrite for an lb without `advertise`.

Fast checks without Docker: the example is a valid farm (once lb knows
nodes.<name>.advertise; skipped with that reason before), and
farm_without_advertise.py (used by run.sh on such an lb) turns every node's
bind + advertise pair into a forward address that lb accepts and that names
the container, leaving the rest of the file alone.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lb.config import load_config
from lb.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "compose" / "farm.toml"
REWRITE = ROOT / "tests" / "docker" / "farm_without_advertise.py"


def _rewriter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("farm_without_advertise", REWRITE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["farm_without_advertise"] = module
    spec.loader.exec_module(module)
    return module


def test_example_is_a_valid_farm() -> None:
    try:
        config = load_config(EXAMPLE)
    except ConfigError as exc:
        if any(key.endswith(".advertise") for key, _ in exc.errors):
            pytest.skip("this lb has no nodes.<name>.advertise yet")
        raise
    assert sorted(config.nodes) == ["a", "b", "c"]
    for name, node in config.nodes.items():
        assert str(node.apps["web"]) == f"app-{name}:9000"
        assert node.workers == 1


def test_rewrite_moves_advertise_into_forward(tmp_path: Path) -> None:
    original = EXAMPLE.read_text()
    rewritten = _rewriter().rewrite(original)
    assert "advertise" not in "".join(
        line for line in rewritten.splitlines() if not line.lstrip().startswith("#")
    )
    path = tmp_path / "farm.toml"
    path.write_text(rewritten)
    config = load_config(path)
    ports = {"a": 7101, "b": 7102, "c": 7103}
    for name, node in config.nodes.items():
        assert (node.forward.host, node.forward.port) == (f"lb-{name}", ports[name])
        assert str(node.listen["web"]) == "0.0.0.0:8080"
    # nothing but the forward/advertise lines changed
    kept = [line for line in original.splitlines() if not line.startswith(("forward", "advertise"))]
    assert [line for line in rewritten.splitlines() if not line.startswith("forward")] == kept


def test_rewrite_refuses_advertise_without_forward() -> None:
    with pytest.raises(SystemExit):
        _rewriter().rewrite('[[nodes]]\nname = "a"\nadvertise = "lb-a:7101"\n')

"""The import layers of docs/architecture.md, checked on the source.

Dependencies point down only: a module may import its own package, a lower
layer and the base modules; the pure core never imports I/O modules; the
modules of lb/node form no import circle (counting imports made only for type
checking: a circle there is still a circle for a reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LB = Path(__file__).resolve().parents[2] / "lb"

BASE = {"lb.errors", "lb.clock"}  # anyone may import these
LAYERS = {
    "lb.wire": 1,
    "lb.extract": 2,
    "lb.routing": 3,
    "lb.cluster": 4,
    "lb.link": 5,
    "lb.config": 5,  # the farm file, validated: what the I/O layer is configured by
    "lb.logs": 5,
    "lb.node": 6,
    "lb.admin": 7,
    "lb.cli": 7,
    "lb.certs": 7,
    "lb.ctl": 7,
    "lb.demo": 7,
    "lb.__main__": 7,
}
EDGES = 7  # the edges (cli, demo, admin) may use each other
PURE = ("lb.wire", "lb.extract", "lb.routing", "lb.cluster", "lb.link")
IO_MODULES = {"asyncio", "socket", "selectors", "uvloop", "ssl", "subprocess", "aiohttp"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(LB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


MODULES = {_module_name(p): p for p in sorted(LB.rglob("*.py"))}


def _layer(module: str) -> int | None:
    if module in BASE or module == "lb":
        return 0
    return LAYERS.get(_package(module))


def test_every_module_has_a_layer() -> None:
    missing = [m for m in MODULES if _layer(m) is None]
    assert not missing, f"add these to LAYERS and docs/architecture.md: {missing}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    own = _layer(module)
    assert own is not None
    bad = []
    for imported in _imports(MODULES[module]):
        if not imported.startswith("lb"):
            continue
        layer = _layer(imported)
        if layer is None:
            bad.append(f"{imported} (no layer)")
        elif _package(imported) != _package(module) and layer > own:
            bad.append(f"{imported} (layer {layer} > {own})")
        elif layer == own and _package(imported) != _package(module) and 0 < own < EDGES:
            bad.append(f"{imported} (same layer {layer}, another package)")
    assert not bad, f"{module} imports upward: {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith(PURE)))
def test_the_pure_core_does_no_io(module: str) -> None:
    io = {i for i in _imports(MODULES[module]) if i.split(".")[0] in IO_MODULES}
    assert not io, f"{module} imports {io}"


def test_no_import_circle_in_node() -> None:
    node_modules = {m for m in MODULES if m.startswith("lb.node.")}
    graph = {m: {i for i in _imports(MODULES[m]) if i in node_modules} for m in node_modules}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                circle = [*path[path.index(n) :], n]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import written to a file is found."""
    f = tmp_path / "x.py"
    f.write_text("from lb.node.node import Node\nimport asyncio\n")
    assert "lb.node.node" in _imports(f)
    assert _layer("lb.node.node") == 6 > (_layer("lb.wire.frames") or 0)

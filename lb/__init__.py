"""lb: a session-homing load balancer for server farms.

Every node of a farm runs lb in front of its own application. lb reads an
identifier from the first bytes of a client connection, finds the session's
home node, and splices the stream to the local application or forwards it to
the home over an inter-node link. See docs/ and ../shared/DESIGN.md.

A build may compile the per-request modules with mypyc (setup.py); in a source
checkout, importing lb refuses compiled modules older than their source, which
would run other code than the checkout holds.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

_PACKAGE = Path(__file__).resolve().parent


def _stale_compiled_modules() -> list[str]:
    """Compiled modules of a source checkout whose .py (or .c) changed after they were built."""
    if not (_PACKAGE.parent / "setup.py").is_file():
        return []  # an installed lb: the wheel's files belong together
    stale = []
    for built in _PACKAGE.rglob("*.cpython-*.so"):
        for suffix in (".py", ".c"):
            source = built.with_name(built.name.split(".", 1)[0] + suffix)
            if source.is_file() and source.stat().st_mtime > built.stat().st_mtime:
                stale.append(str(source.relative_to(_PACKAGE.parent)))
    return sorted(stale)


if _stale := _stale_compiled_modules():
    raise ImportError(
        f"lb's compiled modules are older than their source ({', '.join(_stale)}): "
        "run `bash scripts/compile.sh` to compile again, or `bash scripts/compile.sh --clean` "
        "to run pure Python"
    )

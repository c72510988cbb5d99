"""Rewrite a farm file for an lb that has no `nodes.<name>.advertise` key yet.

Every node's `forward = "<bind>"` + `advertise = "<host:port>"` pair becomes
`forward = "<host:port>"`: the node binds its link listener on the address its
container name resolves to, which is also where its peers connect. Used by
tests/docker/run.sh only; reads the file named by argv[1], writes stdout.
It must not change anything else of the file.
"""

from __future__ import annotations

import re
import sys

_FORWARD = re.compile(r'^forward\s*=\s*"[^"]*"\s*$')
_ADVERTISE = re.compile(r'^advertise\s*=\s*("[^"]*")\s*$')


def rewrite(text: str) -> str:
    """The farm file with each node's forward replaced by its advertise value."""
    out: list[str] = []
    forward_at: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "[[nodes]]":
            forward_at = None
        if _FORWARD.match(stripped):
            forward_at = len(out)
        m = _ADVERTISE.match(stripped)
        if m:
            if forward_at is None:
                raise SystemExit(f"advertise without a forward before it: {line!r}")
            out[forward_at] = f"forward = {m.group(1)}"
            continue
        out.append(line)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        sys.stdout.write(rewrite(f.read()))

"""Rank the collapsed stacks that `py-spy record -f raw` wrote (bench/run.py --profile does).

A script, not a test::

    .venv/bin/python bench/profile_summary.py PROFILE.txt [...] [--top 15]

For every file it prints the share of samples spent waiting for events (idle)
and the top functions by *self* samples (the leaf frame, native frames
included) and by *inclusive* samples (any frame of the stack; Python frames
only, lb's own modules and the event loop's Python-visible parts). Line numbers
are dropped so a function counts once. It reads files only.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(.*?) \((.*?)(?::\d+)?\)$")
IDLE_LEAVES = ("epoll_wait", "epoll_pwait", "uv__io_poll", "__GI_epoll_wait", "__epoll_wait")


def frame_key(frame: str) -> str:
    """'name (file:line)' -> 'name (file)'."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    return f"{m.group(1)} ({m.group(2)})"


def is_python(frame: str) -> bool:
    m = _FRAME.match(frame)
    return bool(m and m.group(2).endswith(".py"))


def summarize(path: Path, top: int) -> str:
    total = 0
    idle = 0
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    for raw in path.read_text(errors="replace").splitlines():
        m = _LINE.match(raw.strip())
        if not m:
            continue
        count = int(m.group(2))
        frames = m.group(1).split(";")
        total += count
        leaf = frames[-1]
        if any(name in leaf for name in IDLE_LEAVES):
            idle += count
            continue
        self_c[frame_key(leaf)] += count
        for key in {frame_key(f) for f in frames if is_python(f)}:
            incl_c[key] += count
    if not total:
        return f"{path}: no samples"
    busy = total - idle
    out = [
        f"{path}: {total} samples, idle (waiting for events) {100 * idle / total:.1f}%,"
        f" busy {busy}",
        "  top self (share of busy samples), leaf frame:",
    ]
    for key, n in self_c.most_common(top):
        out.append(f"    {100 * n / max(busy, 1):5.1f}%  {key}")
    out.append("  top inclusive Python frames (share of busy samples):")
    skip = ("<module>", "_run_module_as_main", "_run_code", "main (", "_run (", "run_node", "run (")
    shown = 0
    for key, n in incl_c.most_common():
        if key.startswith(skip) or "runners.py" in key:
            continue
        out.append(f"    {100 * n / max(busy, 1):5.1f}%  {key}")
        shown += 1
        if shown >= top:
            break
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    for f in args.files:
        print(summarize(f, args.top))
        print()


if __name__ == "__main__":
    main()

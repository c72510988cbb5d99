"""Summarise bench/soak/probe's lines (run.py --probe): per node process, asyncio tasks
and gc-tracked objects over time, and the types that grew most from the first line to
the last one.

    .venv/bin/python bench/soak/probes.py /tmp/soak2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/soak")
    t0 = None
    for line in (work / "actions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["action"] == "load_started":
            t0 = rec["wall"]
    for path in sorted(work.glob("probe-*.jsonl")):
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        if not lines:
            continue
        argv = lines[0]["argv"]
        node = argv[argv.index("--node") + 1] if "--node" in argv else "?"
        worker = argv[argv.index("--worker") + 1] if "--worker" in argv else "sup"
        base = t0 or lines[0]["wall"]
        series = " ".join(
            f"{x['wall'] - base:.0f}s:{x.get('tasks', '-')}t/{x['gc_objects']}o" for x in lines
        )
        print(f"## node {node} worker {worker} pid {lines[0]['pid']} ({len(lines)} lines)")
        print(f"   {series}")
        first, last = lines[0]["types"], lines[-1]["types"]
        grew = sorted(
            ((last.get(k, 0) - first.get(k, 0), k) for k in set(first) | set(last)),
            reverse=True,
        )[:8]
        print("   grew: " + ", ".join(f"{k} {d:+d}" for d, k in grew if d))
        print(f"   last tasks: {lines[-1].get('task_names')}")
        if "traced" in lines[-1]:
            traced = " ".join(f"{x['traced'] / 2**20:.1f}" for x in lines)
            print(f"   traced MiB: {traced}")
            for where, size, count in lines[-1].get("grew_at", [])[:8]:
                print(f"     {size / 1024:+9.1f} KiB {count:+7d} blocks  {where}")


if __name__ == "__main__":
    main()

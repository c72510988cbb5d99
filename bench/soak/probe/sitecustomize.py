"""The soak's probe of a node process: on SIGUSR2 it appends one JSON line of what the
process holds to $LB_SOAK_PROBE_DIR/probe-<pid>.jsonl (not part of lb).

bench/soak/run.py --probe puts this directory on the nodes' PYTHONPATH, so every
`lb run` process (supervisor and workers) imports it at start. A line holds: the
asyncio tasks of the running loop (count, and counts by coroutine name), the
objects the garbage collector tracks (count, and the 40 most common types), and
tracemalloc's current and peak bytes when PYTHONTRACEMALLOC is set, with the 15
source lines whose live allocations grew most since the first line.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import signal
import sys
import time
import tracemalloc

_first: list[tracemalloc.Snapshot | None] = [None]  # the first line's snapshot


def _dump(_signum: int, _frame: object) -> None:
    import asyncio

    out: dict[str, object] = {"wall": time.time(), "pid": os.getpid(), "argv": sys.argv[1:]}
    loop = asyncio._get_running_loop()
    if loop is not None:
        tasks = asyncio.all_tasks(loop)
        names = collections.Counter(
            getattr(t.get_coro(), "__qualname__", type(t.get_coro()).__name__) for t in tasks
        )
        out["tasks"] = len(tasks)
        out["task_names"] = dict(names.most_common(15))
    objs = gc.get_objects()
    out["gc_objects"] = len(objs)
    types = collections.Counter(type(o).__qualname__ for o in objs)
    del objs
    out["types"] = dict(types.most_common(40))
    if tracemalloc.is_tracing():
        cur, peak = tracemalloc.get_traced_memory()
        out["traced"] = cur
        out["traced_peak"] = peak
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        if _first[0] is None:
            _first[0] = snap
        else:
            out["grew_at"] = [
                [str(st.traceback[0]), st.size_diff, st.count_diff]
                for st in snap.compare_to(_first[0], "lineno")[:15]
            ]
    path = os.path.join(os.environ.get("LB_SOAK_PROBE_DIR", "/tmp"), f"probe-{os.getpid()}.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps(out) + "\n")


if os.environ.get("LB_SOAK_PROBE_DIR"):
    signal.signal(signal.SIGUSR2, _dump)

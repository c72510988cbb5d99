"""Directory size and replication cost (issue 11): the figures of docs/directory.md.

* memory per entry at 1,000,000 entries (tracemalloc and RSS), keys as the farm
  stores them (DirectoryKeys.key of a JSESSIONID cookie);
* replication per learned session at 3, 10 and 30 simulated nodes: the bytes every
  node sends and receives (DIRECTORY_UPDATE to every peer, REGISTER / REGISTER_ACK
  to the owners), and the CPU the whole farm spends (learning, encoding, decoding,
  merging, the owner's work), measured by running every node's pure code in one
  process.

Usage: python bench/directory_size.py [--entries N] [--sessions N]
"""

from __future__ import annotations

import argparse
import gc
import resource
import secrets
import time
import tracemalloc

from lb.routing.directory import Directory, DirectoryKeys
from lb.routing.owners import Coordinator, SendRegister
from lb.wire.directory import (
    RegisterAck,
    decode_directory_update,
    decode_owner_frame,
    encode_directory_frames,
    encode_register,
    encode_register_ack,
)
from lb.wire.frames import FrameDecoder

NOW = 1_700_000_000.0
HOUR = 3600.0


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(n: int, traced: bool) -> None:
    keys = DirectoryKeys(b"s" * 32)
    names = [keys.key("cookie", f"JSESSIONID={secrets.token_hex(16)}") for _ in range(n)]
    d = Directory(max_entries=n, max_bytes=2**40)
    gc.collect()
    rss0 = rss_kib()
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t = time.perf_counter()
    for i, key in enumerate(names):
        d.learn(key, ("node-a", "node-b", "node-c")[i % 3], NOW, HOUR + i % 600)
        if i % 100 == 99:
            d.take_outbox()  # a node flushes its outbox every loop turn
    took = time.perf_counter() - t
    gc.collect()
    measured = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    rss1 = rss_kib()
    how = f"tracemalloc {measured / n:.0f} B/entry" if traced else "(RSS run)"
    print(
        f"{n:,} entries: {how}, estimate {d.bytes_used / n:.0f} B/entry, "
        f"RSS growth {(rss1 - rss0) * 1024 / n:.0f} B/entry, learn {took / n * 1e6:.1f} us each"
    )
    del names
    t = time.perf_counter()
    hits = sum(1 for e in d.iter_entries(NOW))
    print(f"  full sync iteration: {hits:,} entries in {time.perf_counter() - t:.2f} s")


def replication(nodes: int, sessions: int) -> None:
    names = [f"node-{i:02d}" for i in range(nodes)]
    keys = DirectoryKeys(b"s" * 32)
    dirs = {n: Directory(max_entries=sessions + 10, max_bytes=2**40) for n in names}
    coords = {n: Coordinator(n, dirs[n]) for n in names}
    sent = 0
    t0 = time.process_time()
    for i in range(sessions):
        home = names[i % nodes]
        key = keys.key("cookie", f"JSESSIONID={i:032x}")
        entry = dirs[home].learn(key, home, NOW, HOUR)
        # the fast path: one DIRECTORY_UPDATE to every peer (batched per loop turn in a
        # node; one session per turn here, the worst case)
        frames = encode_directory_frames(dirs[home].take_outbox())
        for peer in names:
            if peer != home:
                for frame in frames:
                    sent += len(frame)
                    for f in FrameDecoder().feed(frame):
                        for e in decode_directory_update(f.payload):
                            dirs[peer].merge(e, NOW)
        # the owners
        coords[home].register(entry, names, NOW)
        for s in coords[home].take_sends():
            assert isinstance(s, SendRegister)
            reg = encode_register(s.request_id, s.entry)
            sent += len(reg)
            coords[s.to].on_register(home, s.request_id, s.entry, NOW)
            for reply in coords[s.to].take_sends():
                ack = encode_register_ack(reply.request_id, reply.home)
                sent += len(ack)
                [f] = FrameDecoder().feed(ack)
                m = decode_owner_frame(f)
                assert isinstance(m, RegisterAck)
                coords[home].on_register_ack(s.to, m.request_id, m.home, NOW)
        coords[home].take_outcomes()
    cpu = time.process_time() - t0
    print(
        f"{nodes:>2} nodes: {sent / sessions:,.0f} link bytes per learned session (farm-wide), "
        f"{cpu / sessions * 1e6:,.0f} us CPU per learned session (farm-wide, "
        f"{cpu / sessions / nodes * 1e6:,.1f} us per node)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--traced", action="store_true", help="tracemalloc (else RSS only)")
    parser.add_argument("--no-replication", action="store_true")
    args = parser.parse_args()
    memory(args.entries, args.traced)
    if args.no_replication:
        return
    for nodes in (3, 10, 30):
        replication(nodes, args.sessions)


if __name__ == "__main__":
    main()

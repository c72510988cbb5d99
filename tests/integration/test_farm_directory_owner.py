"""A learned session homes its very next request (issue 11), through real node processes.

The test application sets its own session cookie (`sid`, like JSESSIONID or
APPSESSION) and counts the hits of each session. The chain reads that cookie
first (the home cookie comes second only so the harness can prove readiness);
clients send only the application's cookie, so an entry finds the home through
the directory alone. 30 sessions x 10 requests, each on a new TCP connection
through a random entry, with no pause: the response that sets the cookie is
released only once the key's owners hold it, and an entry that has not heard of
the key yet asks them. Every session must stay with one home, its hits counting
1..10. Same with two workers per node.

TLS 1.2 passthrough: a session made through a random entry (openssl s_client
-sess_out) is resumed at once through every entry (-sess_in, all three at the
same time), 20 times, by session id and by ticket: every resumption must be
"Reused" at the home (the home holds its final handshake flight until the
owners acknowledged the session id or ticket).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import random
import re
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lb.routing.directory import DirectoryKeys, directory_secret
from lb.routing.owners import owners
from tests.support.farm import Farm, make_cert

pytestmark = pytest.mark.integration

CHAIN = '[ { kind = "cookie", name = "sid" }, { kind = "home-cookie" } ]'
SESSIONS = 30
REQUESTS = 10


class Refused(Exception):
    """A response other than 200 (a 502 from a dead home, a 503 ...)."""


def get(farm: Farm, entry: str, cookie: str | None) -> tuple[str | None, dict[str, object]]:
    host, port = farm.addr(entry)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/walk", headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        sid = None
        for k, v in resp.getheaders():
            if k.lower() == "set-cookie" and v.startswith("sid="):
                sid = v.split(";")[0]
        raw = resp.read()
        if resp.status != 200:
            raise Refused(resp.status, raw)
        return sid, json.loads(raw)
    finally:
        conn.close()


def walk(farm: Farm, seed: int) -> tuple[str, list[tuple[str, str, int]]]:
    """One browser-like session: a first request, then 9 more with its cookie, no pause."""
    rng = random.Random(seed)
    sid, body = get(farm, rng.choice(farm.nodes), None)
    assert sid is not None, body
    hits = [(str(body["node"]), "first", int(body["session_hits"]))]  # type: ignore[call-overload]
    for _ in range(REQUESTS - 1):
        entry = rng.choice(farm.nodes)
        _, body = get(farm, entry, sid)
        hits.append((str(body["node"]), entry, int(body["session_hits"])))  # type: ignore[call-overload]
    return sid, hits


@pytest.fixture(scope="module", params=[1, 2], ids=["workers1", "workers2"])
def owner_farm(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Farm]:
    farm = Farm(
        tmp_path_factory.mktemp(f"ownerfarm{request.param}"),
        services={"web": ("http", CHAIN)},
        workers=request.param,
    )
    try:
        farm.start()
        yield farm
    finally:
        farm.close()


def test_every_session_stays_home_with_no_pause(owner_farm: Farm) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        walks = list(pool.map(lambda s: walk(owner_farm, s), range(SESSIONS)))
    broken = []
    for sid, hits in walks:
        homes = {node for node, _, _ in hits}
        counts = [n for _, _, n in hits]
        if len(homes) != 1 or counts != list(range(1, REQUESTS + 1)):
            broken.append((sid, hits))
    stayed = SESSIONS - len(broken)
    print(f"{stayed}/{SESSIONS} sessions stayed home")
    assert not broken, f"{len(broken)} sessions split: {broken[:3]}"
    counters: dict[str, int] = {}
    for node in owner_farm.nodes:
        for name, value in owner_farm.tables(node)["counters"].items():
            if name.startswith("directory_"):
                counters[name] = counters.get(name, 0) + value
    print("directory counters:", counters)
    # the owners were asked: most sessions start on a node that does not own both replicas
    assert counters.get("directory_register_acked", 0) > 0


# -- TLS 1.2 passthrough: a session resumed at once through every entry ------------------

PT_SERVICES = {
    "web": ("http", CHAIN),
    "pt": ("tls-passthrough", '[ { kind = "tls-ticket" }, { kind = "tls-session-id" } ]'),
}
TRIES = 20


@pytest.fixture(scope="module")
def pt_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    workdir = tmp_path_factory.mktemp("ptownerfarm")
    cert, key = make_cert(workdir)
    farm = Farm(workdir, services=PT_SERVICES, tls_files=(cert, key))
    try:
        farm.start()
        yield farm
    finally:
        farm.close()


def s_client(farm: Farm, entry: str, *args: str) -> tuple[str, str]:
    """One TLS 1.2 connection through `entry`'s passthrough listener: (handshake kind, node)."""
    host, port = farm.addr(entry, "pt")
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_2", "-ign_eof", *args],
        input="GET / HTTP/1.0\r\nHost: localhost\r\n\r\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    kind = re.search(r"^(New|Reused), TLSv1\.2", r.stdout, re.M)
    node = re.search(r'\{"node": "([a-z]+)"', r.stdout)
    assert kind and node, r.stdout[-3000:] + r.stderr[-2000:]
    return kind.group(1), node.group(1)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
@pytest.mark.parametrize("mode", ["session-id", "ticket"])
def test_tls12_resumed_at_once_through_every_entry_lands_home(
    pt_farm: Farm, tmp_path: Path, mode: str
) -> None:
    extra = ["-no_ticket"] if mode == "session-id" else []
    rng = random.Random(mode)
    misses = []
    for attempt in range(TRIES):
        sess = tmp_path / f"sess{attempt}.pem"
        kind, home = s_client(pt_farm, rng.choice(pt_farm.nodes), "-sess_out", str(sess), *extra)
        assert kind == "New"
        # no pause: every entry at once, right after the first handshake
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            results = list(
                pool.map(
                    lambda e, s=sess: s_client(pt_farm, e, "-sess_in", str(s), *extra),
                    pt_farm.nodes,
                )
            )
        for entry, result in zip(pt_farm.nodes, results, strict=True):
            if result != ("Reused", home):
                misses.append((attempt, entry, home, result))
    assert not misses, f"{len(misses)} resumptions missed their home: {misses[:5]}"


# -- kill -9 of the node that owns the most keys, under the walk ---------------------------


def test_killing_the_busiest_owner_breaks_no_session_whose_home_lives(
    tmp_path: Path,
) -> None:
    farm = Farm(tmp_path / "killfarm", services={"web": ("http", CHAIN)})
    try:
        farm.start()
        keys = DirectoryKeys(directory_secret(farm.secret.encode(), ()))
        alive = list(farm.nodes)
        lock = threading.Lock()
        sessions: dict[str, list[tuple[str, int]]] = {}
        killed = threading.Event()

        def request(sid: str | None) -> tuple[str | None, dict[str, object]]:
            for _ in range(40):
                with lock:
                    entry = random.choice(alive)
                try:
                    return get(farm, entry, sid)
                except (OSError, http.client.HTTPException, Refused):
                    # the entry or the home was the killed node: the client tries again
                    threading.Event().wait(0.05)
                    continue
            raise AssertionError("no entry answered")

        def one_session(seed: int) -> None:
            sid, body = request(None)
            assert sid is not None
            log = sessions.setdefault(sid, [])
            log.append((str(body["node"]), int(body["session_hits"])))  # type: ignore[call-overload]
            for _ in range(REQUESTS - 1):
                _, body = request(sid)
                log.append((str(body["node"]), int(body["session_hits"])))  # type: ignore[call-overload]

        def killer() -> None:
            # once 15 sessions exist: the node that owns the most of their keys dies
            while len(sessions) < 15:
                threading.Event().wait(0.005)
            owned = Counter(
                owners(keys.key("cookie", sid), farm.nodes)[0] for sid in list(sessions)
            )
            victim = owned.most_common(1)[0][0]
            with lock:
                alive.remove(victim)
            farm.kill(victim)
            killed.set()
            victims.append(victim)

        victims: list[str] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=7) as pool:
            kill = pool.submit(killer)
            list(pool.map(one_session, range(SESSIONS)))
            kill.result()
        assert killed.is_set()
        victim = victims[0]
        broken = []
        for sid, log in sessions.items():
            homes = [node for node, _ in log]
            if homes[0] == victim or victim in homes:
                continue  # homed on the dead node: re-homed, as before
            hits = [n for _, n in log]
            if len(set(homes)) != 1 or hits != sorted(set(hits)) or hits[0] != 1:
                broken.append((sid, log))
        survivors = sum(1 for log in sessions.values() if victim not in {n for n, _ in log})
        print(f"killed {victim}; {survivors} sessions homed elsewhere, {len(broken)} broken")
        assert survivors >= 10
        assert not broken, broken[:3]
    finally:
        farm.close()

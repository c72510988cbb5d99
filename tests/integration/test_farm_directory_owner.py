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
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import random
from collections.abc import Iterator

import pytest

from tests.support.farm import Farm

pytestmark = pytest.mark.integration

CHAIN = '[ { kind = "cookie", name = "sid" }, { kind = "home-cookie" } ]'
SESSIONS = 30
REQUESTS = 10


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
        body = json.loads(resp.read())
        assert resp.status == 200, body
        return sid, body
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

"""The jwt-subject plugin in a real farm: one JWT subject reaches one node from every entry.

Starts real lb node processes and backends on loopback through the farm helper
of the lb repository (tests/support/farm.py), so it runs only when
LB_FARM_TESTS=1 and the plugin is installed into the interpreter running it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("LB_FARM_TESTS") != "1",
        reason="starts real lb processes; set LB_FARM_TESTS=1 to run",
    ),
]

LB_REPO = Path(__file__).resolve().parents[3]
CHAIN = '[ { kind = "home-cookie" }, { kind = "jwt-subject" } ]'
KEY = b"signing key of the application, never seen by lb"
SUBJECTS = [f"user-{i}@example.test" for i in range(12)]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwt(sub: str, iat: int = 1_700_000_000) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": sub, "iat": iat, "scope": "cart"}).encode())
    sig = hmac.new(KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def get(farm: Any, entry: str, path: str, headers: Mapping[str, str]) -> tuple[int, str, Any]:
    """GET ``path`` through ``entry``: (status, Set-Cookie of the home cookie or "", JSON body)."""
    host, port = farm.addr(entry)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path, headers=dict(headers))
        resp = conn.getresponse()
        body = resp.read()
        cookies = [
            v for k, v in resp.getheaders() if k.lower() == "set-cookie" and v.startswith("lbhome=")
        ]
        data = json.loads(body) if resp.status == 200 else None
        return resp.status, ";".join(cookies), data
    finally:
        conn.close()


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lb.extract import registry

    assert "jwt-subject" in registry.available(), (
        f"the plugin is not installed in {sys.executable}: pip install -e plugins/lb-jwt-subject"
    )
    if str(LB_REPO) not in sys.path:
        sys.path.insert(0, str(LB_REPO))
    from tests.support.farm import Farm

    f = Farm(tmp_path_factory.mktemp("jwt-farm"), services={"web": ("http", CHAIN)})
    try:
        f.start()
    except BaseException:
        f.close()
        raise
    yield f
    crashed = f.unexpected_exits()
    logs = f.all_logs() if crashed else ""
    f.close()
    if crashed:
        pytest.fail(f"processes exited during the test: {', '.join(crashed)}\n{logs}")


def test_one_subject_one_node_from_every_entry_and_subjects_spread(farm: Any) -> None:
    homes: dict[str, str] = {}
    for sub in SUBJECTS:
        seen: dict[str, str] = {}
        for i, entry in enumerate(farm.nodes):
            # a fresh token per request: same subject, other issue time, other signature
            headers = {"Authorization": f"Bearer {jwt(sub, 1_700_000_000 + i)}"}
            status, home_cookie, body = get(farm, entry, f"/orders/{i}", headers)
            assert status == 200
            # homed by its identifier, not placed as a new session
            assert home_cookie == "", f"{sub} via {entry} was placed as a new session"
            seen[entry] = body["node"]
        assert len(set(seen.values())) == 1, f"{sub} reached different nodes: {seen}"
        homes[sub] = next(iter(seen.values()))
    assert set(homes.values()) <= set(farm.nodes)
    assert len(set(homes.values())) >= 2, f"all {len(SUBJECTS)} subjects on one node: {homes}"


def test_home_cookie_comes_first_in_the_chain(farm: Any) -> None:
    token = jwt(SUBJECTS[0])
    for home in farm.nodes:
        for entry in farm.nodes:
            headers = {"Authorization": f"Bearer {token}", "Cookie": farm.cookie_header(home)}
            status, _, body = get(farm, entry, "/cookie-first", headers)
            assert status == 200
            assert body["node"] == home, f"entered at {entry}"


def test_bad_tokens_are_served_as_new_sessions_and_never_logged(farm: Any) -> None:
    good = jwt("someone")
    head, body, sig = good.split(".")
    bad = [
        f"{head}.{body[:-3]}*x*.{sig}",  # not base64url
        f"{head}.{b64url(b'[1, 2]')}.{sig}",  # not an object
        f"{head}.{b64url(json.dumps({'name': 'x'}).encode())}.{sig}",  # no sub
        f"{head}.{b64url(json.dumps({'sub': 'x', 'pad': 'p' * 7000}).encode())}.{sig}",  # too big
    ]
    for token in bad:
        for entry in farm.nodes:
            status, home_cookie, _ = get(
                farm, entry, "/bad-token", {"Authorization": f"Bearer {token}"}
            )
            assert status == 200
            assert home_cookie, "a request without identifier starts a new session"
    for node in farm.nodes:
        assert farm.events(node, "extractor_failed") == []
        log = farm.logs(node)
        for token in [good, *bad]:
            for part in token.split("."):
                assert part not in log, f"node {node} logged part of a token"

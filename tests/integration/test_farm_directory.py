"""The directory through a real farm: an application's own session cookie homes its session.

The test backend is a real application that sets its own `sid` cookie (like
JSESSIONID). The chain reads that cookie first; the tests send it without lb's
home cookie, so a node can find the home only through the directory: the home
learns `sid` from the Set-Cookie of its application's response and replicates
it to every peer. (The home cookie comes second in the chain so the farm
harness can prove readiness with it.)
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import pytest

from tests.support.farm import Farm
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

APP_COOKIE_CHAIN = '[ { kind = "cookie", name = "sid" }, { kind = "home-cookie" } ]'


def get(
    farm: Farm, entry: str, cookie: str | None
) -> tuple[int, dict[str, str], dict[str, object]]:
    host, port = farm.addr(entry)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders() if k.lower() != "set-cookie"}
        set_cookies = [v for k, v in resp.getheaders() if k.lower() == "set-cookie"]
        headers["set-cookie"] = "\n".join(set_cookies)
        return resp.status, headers, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def dir_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    farm = Farm(
        tmp_path_factory.mktemp("dirfarm"),
        services={"web": ("http", APP_COOKIE_CHAIN)},
    )
    try:
        farm.start()
        yield farm
    finally:
        farm.close()


def test_app_cookie_session_is_learned_and_found_from_every_entry(dir_farm: Farm) -> None:
    status, headers, body = get(dir_farm, "a", None)
    assert status == 200
    sid_cookie = next(c for c in headers["set-cookie"].split("\n") if c.startswith("sid="))
    sid = sid_cookie.split(";")[0]
    home = body["node"]
    learned_at = time.monotonic()
    # converge: within a second every entry must find the home by the app cookie alone
    # a directory hit reaches the home without a fresh lb cookie; a miss is a new session
    # (which may land on the home by chance, but always gets a fresh lbhome cookie)
    pending = {"a", "b", "c"}

    def every_entry_finds_the_home() -> None:
        for entry in sorted(pending):
            _, found_headers, found = get(dir_farm, entry, sid)
            if found["node"] == home and "lbhome=" not in found_headers["set-cookie"]:
                pending.discard(entry)
        assert not pending, f"entries {sorted(pending)} did not find home {home}"

    eventually_passes(
        every_entry_finds_the_home, timeout=1.0, interval=0.02, what="directory not converged"
    )
    converged = time.monotonic() - learned_at
    print(f"directory converged on 3 nodes in {converged * 1000:.0f} ms")
    answers = [get(dir_farm, entry, sid) for entry in ("b", "c", "a", "c")]
    assert all("lbhome=" not in headers["set-cookie"] for _, headers, _ in answers)
    hits = [body for _, _, body in answers]
    assert {h["node"] for h in hits} == {home}
    counts = [int(str(h["session_hits"])) for h in hits]
    assert counts == sorted(counts) and len(set(counts)) == 4  # one session, counting up


def test_unknown_app_cookie_is_a_new_session_not_an_error(dir_farm: Farm) -> None:
    status, headers, _ = get(dir_farm, "b", "sid=never-issued-by-anyone")
    assert status == 200
    assert "lbhome=" in headers["set-cookie"]  # placed as a new session, with a home cookie


def test_directory_is_in_every_nodes_tables(dir_farm: Farm) -> None:
    get(dir_farm, "c", None)

    def same_nonempty_directory_everywhere() -> None:
        sizes = [dir_farm.tables(n)["directory"] for n in ("a", "b", "c")]
        assert min(sizes) >= 1 and len(set(sizes)) == 1, sizes

    eventually_passes(
        same_nonempty_directory_everywhere, timeout=2.0, what="directory sizes differ"
    )

"""SIGHUP on a running node: what the new farm file changes live, and what it may not change.

A file that adds a previous secret is taken at once: the node accepts home
cookies signed with it, re-keys its directory (the oldest secret names
sessions), and renews its link certificates; its peers stay linked. A file that
changes the farm secret itself is refused, and the node goes on as before.
"""

from __future__ import annotations

import http.client
import json
import signal
from collections.abc import Callable

import pytest

from lb.routing.cookie import CookieKeyring
from tests.support.farm import COOKIE_NAME, Farm
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

OLD = "an-old-farm-secret-that-is-long-enough-0123456789"


def answer(farm: Farm, entry: str, cookie: str) -> tuple[str, bool]:
    """(answering node, whether a fresh home cookie was set) for a request with `cookie`."""
    conn = http.client.HTTPConnection(*farm.addr(entry), timeout=10)
    try:
        conn.request("GET", "/", headers={"Cookie": cookie})
        resp = conn.getresponse()
        fresh = any(
            k.lower() == "set-cookie" and v.startswith(f"{COOKIE_NAME}=")
            for k, v in resp.getheaders()
        )
        return str(json.loads(resp.read())["node"]), fresh
    finally:
        conn.close()


def test_sighup_takes_previous_secrets_and_refuses_a_new_secret(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(nodes=("a", "b"))
    signed_old = CookieKeyring(farm.name, OLD.encode()).sign("b", 2**31 - 1)
    cookie = f"{COOKIE_NAME}={signed_old}"
    assert answer(farm, "a", cookie)[1], "a cookie of an unknown secret is not believed"

    current = f'secret = "{farm.secret}"'
    text = farm.config_text()
    farm.config_path.write_text(text.replace(current, f'{current}\nprevious_secrets = ["{OLD}"]'))
    farm.kill("a", signal.SIGHUP)
    eventually(
        lambda: farm.events("a", "farm_reloaded"), timeout=5.0, what="a re-read its farm file"
    )
    for event in ("link_certs_reloaded", "directory_rekeyed", "previous_secrets_reloaded"):
        assert farm.events("a", event), event
    assert answer(farm, "a", cookie) == ("b", False)  # homed on b, as the old cookie says
    assert answer(farm, "a", farm.cookie_header("b")) == ("b", False)

    farm.config_path.write_text(
        text.replace(current, 'secret = "a-new-secret-0123456789-0123456789-abcdef"')
    )
    farm.kill("a", signal.SIGHUP)
    eventually(lambda: farm.events("a", "reload_refused"), timeout=5.0, what="a refused the file")
    assert len(farm.events("a", "farm_reloaded")) == 1
    assert answer(farm, "a", cookie) == ("b", False)  # the previous secret still holds

"""json logs of a real node stay one JSON object per line, stdlib logging records included.

A plugin extractor logs the way plugin authors do, with the standard library's
`logging` (tests/support/plugins/lb-test-raising: `test-stdlib-log` warns on every
request, over two lines). Those records must reach the node's log as JSON records
(with the logger's name), like lb's own events, and a normal TLS client close must
add nothing to it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.support.farm import DEFAULT_SERVICES, Farm, make_cert
from tests.support.wait import eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

PLUGIN_WARNING = "test-stdlib-log: a plugin's warning\nover two lines"


def test_a_plugins_stdlib_warning_is_a_json_line(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("certs")
    cert, key = make_cert(workdir)
    chain = '[ { kind = "test-stdlib-log" }, { kind = "home-cookie" } ]'
    farm = make_farm(
        nodes=("a",),
        services={"web": DEFAULT_SERVICES["web"], "secure": ("tls-terminate", chain)},
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
    )
    host, port = farm.addr("a", "secure")
    for _ in range(3):
        r = subprocess.run(
            ["curl", "-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
             f"https://{host}:{port}/"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        assert (r.returncode, r.stdout) == (0, "200"), r.stderr

    def warned() -> bool:
        return sum(r.get("event") == PLUGIN_WARNING for r in farm.events("a")) == 3

    eventually(warned, timeout=10, what="the plugin's three warnings in the node log")
    lines = [line for line in farm.logs("a").splitlines() if line.strip()]
    bad = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not isinstance(rec, dict):
            bad.append(line)
    assert not bad, f"{len(bad)} of {len(lines)} lines are not JSON objects: {bad[:5]}"
    rec = next(r for r in farm.events("a") if r.get("event") == PLUGIN_WARNING)
    assert (rec["logger"], rec["level"]) == ("lb_test_raising", "warning")
    assert not [r for r in farm.events("a") if r.get("logger") == "asyncio"], farm.log_tail("a")

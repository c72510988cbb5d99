"""Smoke test of the side-by-side benchmark: `bench/run.py --quick --scenarios
local,pooled,tls-terminate` end to end.

It checks that the benchmark runs and reports every proxy with numbers and
no failed requests; it asserts no timing or ratio thresholds (those depend
on the machine). It is skipped when haproxy, nginx or wrk are missing and
cannot be installed (bench/run.py exits with code 3 then).
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
EXIT_NO_TOOLS = 3
NUMERIC = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "proxy_cpu_pct")

pytestmark = pytest.mark.integration


def _load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


WRK_SAMPLE = """Running 1s test @ http://127.0.0.1:41000/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    2.00ms  30.12ms   90.00%
    Req/Sec    12.00k     1.00k   13.00k    80.00%
  Latency Distribution
     50%  750.00us
     75%    3.50ms
     90%    6.00ms
     99%    1.20s
  12345 requests in 1.01s, 1.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  12222.77
Transfer/sec:      1.49MB
"""


def test_parse_wrk_reads_counts_units_and_errors() -> None:
    run = _load_run()
    res = run.parse_wrk(WRK_SAMPLE)
    assert res["requests"] == 12345
    assert res["rps"] == pytest.approx(12222.77)
    assert res["p50_ms"] == pytest.approx(0.75)
    assert res["p99_ms"] == pytest.approx(1200.0)
    assert res["bytes"] == pytest.approx(1.5 * 1024 * 1024)
    assert res["socket_errors"] == {"connect": 0, "read": 2, "write": 0, "timeout": 3}
    assert res["non2xx"] == 7
    assert res["errors"] == 12


def test_parse_wrk_rejects_output_without_counts() -> None:
    run = _load_run()
    with pytest.raises(ValueError):
        run.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_pooled_script_rotates_every_home_and_parse_reads_its_count() -> None:
    run = _load_run()
    script = run.pooled_script({"a": "lbhome=xa; SRV=a", "b": "lbhome=xb; SRV=b"})
    assert 'homes = {"a", "b"}' in script
    assert 'cookies = {"lbhome=xa; SRV=a", "lbhome=xb; SRV=b"}' in script
    res = run.parse_pooled("Requests/sec: 1.0\nPOOLED hits 30 answered 40\n")
    assert res == {"home_hits": 30, "home_answered": 40, "home_share": 0.75}
    with pytest.raises(ValueError):
        run.parse_pooled("Requests/sec: 1.0\n")


def test_pair_ratios_pair_repeat_i_with_repeat_i_and_skip_disturbed_runs() -> None:
    run = _load_run()
    lb = {"runs": [{"rps": 90.0}, {"rps": 60.0}, {"rps": 80.0, "other_cpu_pct": 40.0}]}
    haproxy = {"runs": [{"rps": 100.0}, {"rps": 50.0}, {"rps": 80.0}]}
    # pairs 0.9 and 1.2; the third is left out (disturbed): the ratio of medians would
    # pair lb's 80 with HAProxy's 80 from different moments
    assert run.pair_ratios(lb, haproxy, "rps") == pytest.approx([0.9, 1.2])
    cell = run._pairs_cell({"pairs/haproxy-http": [0.9, 1.2, 1.0]}, "haproxy-http")
    assert cell == "1.00x (0.90-1.20)"
    assert run._pairs_cell({}, "haproxy-http") == "-"


def test_second_haproxy_hop_has_no_cookie_persistence() -> None:
    """A second HAProxy (the forwarded chain's, haproxy-farm's other node) gets the
    requests with SRV removed by the first (`indirect`): a cookie there would add a
    Set-Cookie to every answer for the first to remove, work lb's home does not do."""
    run = _load_run()
    for kind in ("haproxy-farm", "haproxy-http"):
        assert [run.KINDS[kind].persists(i) for i in range(2)] == [True, False], kind
    plain = run.haproxy_conf(1000, {"b": 2000}, "http", 100, "a", persist=False)
    assert "cookie" not in plain and "server b 127.0.0.1:2000" in plain
    assert "cookie SRV insert" in run.haproxy_conf(1000, {"b": 2000}, "http", 100, "a")


def _failures(row: dict[str, Any]) -> list[dict[str, Any]]:
    """What failed in each run of a row (a run's whole dict is cut short in the report)."""
    keys = ("requests", "socket_errors", "non2xx")
    return [{k: run.get(k) for k in keys} for run in row["runs"]]


def test_quick_local_run_reports_every_proxy(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    try:
        proc = subprocess.run(
            [
                *(sys.executable, str(RUN), "--quick"),
                *("--scenarios", "local,pooled,tls-terminate"),
                *("--json", str(out)),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,  # the first run on a fresh root machine may install packages
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"bench/run.py --quick did not finish: {exc}")
    if proc.returncode == EXIT_NO_TOOLS:
        pytest.skip(f"benchmark tools unavailable: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())

    rows = {r["proxy"]: r for r in result["rows"] if r["scenario"] == "local"}
    assert rows.pop("haproxy-farm")["status"] == "n/a"  # pooled only
    assert set(rows) == {"lb", "haproxy-http", "haproxy-tcp", "nginx"}
    for name, row in rows.items():
        assert row["status"] in ("ok", "flagged"), (name, row)
        assert row["errors"] == 0, (name, _failures(row))
        assert row["requests"] > 0, name
        for field in NUMERIC:
            value = row[field]
            assert isinstance(value, float) and math.isfinite(value), (name, field, value)
        assert row["label"] in result["table_markdown"]

    ratios = [r for r in result["ratios"] if r["scenario"] == "local"]
    assert {r["metric"] for r in ratios} == {"rps", "cpu_us_per_req", "p99_ms"}
    for r in ratios:
        for peer in ("haproxy-http", "haproxy-tcp", "nginx"):
            value = r[f"lb/{peer}"]
            assert isinstance(value, float) and math.isfinite(value), (r, peer)
            pairs = r[f"pairs/{peer}"]  # --quick: one repeat, so one pair (none if disturbed)
            assert len(pairs) <= 1 and all(math.isfinite(v) and v > 0 for v in pairs), r
    assert result["machine"]["nproc"] >= 1

    # pooled: HAProxy (http) and nginx choose the server by cookie on every request, so
    # every answer comes from the cookie's home (the scenario's own check); lb's share is
    # reported, whatever it is today
    pooled = {r["proxy"]: r for r in result["rows"] if r["scenario"] == "pooled"}
    assert pooled["haproxy-tcp"]["status"] == "n/a"
    for name in ("lb", "haproxy-http", "nginx", "haproxy-farm"):
        row = pooled[name]
        assert row["errors"] == 0, (name, _failures(row))
        assert row["requests"] > 0, name
        assert 0.0 <= row["home_share"] <= 1.0, (name, row["home_share"])
        assert all(r["home_answered"] == r["requests"] for r in row["runs"]), name
    assert pooled["haproxy-http"]["home_share"] == 1.0
    assert pooled["nginx"]["home_share"] == 1.0
    assert pooled["haproxy-farm"]["home_share"] == 1.0  # b's requests through b's HAProxy
    for r in (r for r in result["ratios"] if r["scenario"] == "pooled"):
        value = r["lb/haproxy-farm"]  # lb's layout with HAProxy in its place
        assert isinstance(value, float) and math.isfinite(value), r
    assert {r["metric"] for r in result["ratios"] if r["scenario"] == "pooled"} == {
        "rps",
        "cpu_us_per_req",
        "p99_ms",
    }

    # tls-terminate: wrk speaks TLS to each proxy, which ends it and routes the request by
    # its cookie to the plain application (the readiness probe checked the answer's node)
    tls = {r["proxy"]: r for r in result["rows"] if r["scenario"] == "tls-terminate"}
    assert tls.pop("haproxy-tcp")["status"] == "n/a"
    assert tls.pop("haproxy-farm")["status"] == "n/a"
    for name, row in tls.items():
        assert row["status"] in ("ok", "flagged"), (name, row)
        assert row["errors"] == 0 and row["requests"] > 0, (name, _failures(row))


def test_tls_termination_configs_end_tls_at_the_first_hop_only(tmp_path: Path) -> None:
    run = _load_run()
    pem = tmp_path / "both.pem"
    first = run.haproxy_conf(1000, 2000, "http", 100, "a", crt=pem)
    assert f"bind 127.0.0.1:1000 ssl crt {pem} alpn http/1.1" in first
    assert " ssl" not in run.haproxy_conf(1000, 2000, "http", 100, "a")
    files = (tmp_path / "cert.pem", tmp_path / "key.pem")
    ctx = run.Ctx(run.Settings(), {}, tmp_path, None, None, 1, 4096)
    ended = run.NginxProxy.conf(ctx, tmp_path, 1000, 2000, False, files)
    assert "listen 127.0.0.1:1000 ssl backlog=4096;" in ended
    assert f"ssl_certificate {files[0]};" in ended and f"ssl_certificate_key {files[1]};" in ended
    assert " ssl" not in run.NginxProxy.conf(ctx, tmp_path, 1000, 2000, False)

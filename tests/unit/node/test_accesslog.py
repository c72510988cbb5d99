"""lb.node.accesslog: the access line's fields, its bounds, and sampling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lb.node.accesslog import (
    PATH_LIMIT,
    AccessLog,
    access_fields,
    clean_path,
    connection_fields,
    no_answer_text,
    tls_fields,
)

ROOT = Path(__file__).resolve().parents[3]

ARGS: dict[str, Any] = {
    "service": "web",
    "entry": "a",
    "home": "b",
    "method": b"GET",
    "path": b"/cart/7?token=SECRET&x=1",
    "status": 200,
    "bytes_in": 120,
    "bytes_out": 4096,
    "t_head": 0.0001234567,
    "t_home": 0.002,
    "t_first_byte": 0.0105,
    "t_total": 0.25,
    "id_kind": "home-cookie",
    "new_session": False,
    "client": "2001:db8::7",
    "client_port": 51234,
}


def test_fields_of_a_forwarded_request() -> None:
    assert access_fields(**ARGS) == {
        "service": "web",
        "entry": "a",
        "client": "2001:db8::7",
        "client_port": 51234,
        "home": "b",
        "method": "GET",
        "path": "/cart/7",
        "status": 200,
        "error": None,
        "bytes_in": 120,
        "bytes_out": 4096,
        "t_head": 0.000123,
        "t_home": 0.002,
        "t_first_byte": 0.0105,
        "t_total": 0.25,
        "id_kind": "home-cookie",
        "new_session": False,
    }


def test_a_tls_terminate_line_adds_its_connections_tls() -> None:
    tls = tls_fields("TLSv1.3", "TLS_AES_256_GCM_SHA384", "shop.example")
    fields = access_fields(**ARGS, tls=tls)
    assert {k: v for k, v in fields.items() if k.startswith("tls_")} == {
        "tls_version": "TLSv1.3",
        "tls_cipher": "TLS_AES_256_GCM_SHA384",
        "tls_sni": "shop.example",
    }
    assert {k: v for k, v in fields.items() if not k.startswith("tls_")} == access_fields(**ARGS)
    assert tls_fields("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", None)["tls_sni"] is None


def test_a_client_sent_server_name_is_bounded_and_escaped() -> None:
    assert tls_fields("TLSv1.3", "x", "a\nb\x1bc")["tls_sni"] == "a\\nb\\x1bc"
    assert tls_fields("TLSv1.3", "x", "n" * 1000)["tls_sni"] == "n" * 255


def test_an_error_answered_by_the_entry_has_no_home_and_no_steps() -> None:
    args = dict(ARGS, home=None, status=408, t_home=None, t_first_byte=None, id_kind=None)
    fields = access_fields(**args)
    assert (fields["home"], fields["t_home"], fields["t_first_byte"], fields["id_kind"]) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/", "/"),
        ("/a/b?", "/a/b"),
        ("/login?password=hunter2", "/login"),
        ("http://example.test/x?y=1", "http://example.test/x"),
        (b"/caf\xe9", "/caf\xe9"),  # bytes read as latin-1: one character per byte
        ("/a\r\nfake: line", "/a\\r\\nfake: line"),
        ("/" + "x" * 1000, "/" + "x" * (PATH_LIMIT - 1)),
        ("/" + "x" * 1000 + "?q", "/" + "x" * (PATH_LIMIT - 1)),
    ],
)
def test_path_drops_the_query_is_bounded_and_escaped(target: str | bytes, logged: str) -> None:
    assert clean_path(target) == logged


def test_method_is_bounded() -> None:
    assert access_fields(**dict(ARGS, method="X" * 100))["method"] == "X" * 32


def _never() -> float:
    raise AssertionError("drawn although the log is off")


def test_off_returns_before_building_anything() -> None:
    def emit(*_a: Any, **_k: Any) -> None:
        raise AssertionError("written although the log is off")

    for log in (AccessLog(False, 1.0, emit=emit, draw=_never), AccessLog(True, 0.0, emit=emit)):
        assert not log.enabled
        assert not log.wanted()
        # an argument that would fail if it were looked at: nothing is built
        log.record(**dict(ARGS, path=object()))


def test_sampling_draws_once_per_request() -> None:
    lines: list[dict[str, Any]] = []
    draws = iter([0.1, 0.6, 0.49, 0.5])
    log = AccessLog(
        True,
        0.5,
        emit=lambda event, **kw: lines.append({"event": event, **kw}),
        draw=lambda: next(draws),
    )
    for i in range(4):
        log.record(**dict(ARGS, status=200 + i))
    assert [line["status"] for line in lines] == [200, 202]  # drawn 0.1 and 0.49 < 0.5
    assert all(line["event"] == "access" for line in lines)


def test_full_sample_never_draws() -> None:
    lines: list[str] = []
    log = AccessLog(True, 1.0, emit=lambda event, **_kw: lines.append(event), draw=_never)
    assert log.wanted()
    log.record(**ARGS)
    log.write(**ARGS)
    assert lines == ["access", "access"]


def test_sample_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        AccessLog(True, 1.5, emit=print)


def test_json_line_through_the_configured_logger() -> None:
    script = f"""
from lb.logs import configure_logging
from lb.node.accesslog import AccessLog
from tests.support.config_data import base, parse
configure_logging("warning", "json")
data = base()
data["log"] = {{"access_log": "on", "access_log_sample": 1.0}}
log = AccessLog.from_config(parse(data), "a")
log.record(**{ARGS!r})
data["log"] = {{"access_log": "off"}}
AccessLog.from_config(parse(data), "a").record(**{ARGS!r})
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines  # on: one line (despite level "warning"); off: none
    rec = json.loads(lines[0])
    assert rec["event"] == "access" and rec["node"] == "a" and rec["level"] == "info"
    assert {k: rec[k] for k in ("path", "status", "home", "id_kind", "t_total")} == {
        "path": "/cart/7",
        "status": 200,
        "home": "b",
        "id_kind": "home-cookie",
        "t_total": 0.25,
    }
    assert "SECRET" not in lines[0] and "token" not in lines[0]


def test_connection_fields_of_a_tcp_connection() -> None:
    fields = connection_fields(
        "raw", "a", "192.0.2.7", 40000, "b", None, 17, 4096, 0.0012345678, 2.5, "client-ip", True
    )
    assert fields == {
        "service": "raw",
        "entry": "a",
        "client": "192.0.2.7",
        "client_port": 40000,
        "home": "b",
        "error": None,
        "bytes_in": 17,
        "bytes_out": 4096,
        "t_home": 0.001235,
        "t_total": 2.5,
        "id_kind": "client-ip",
        "new_session": True,
    }


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (0, "no upstream: the upstream closed"),
        (2, "no upstream: app_refused"),
        (10, "no upstream: link_closed"),
        (999, "no upstream: reset reason 999"),  # a reason code this version does not know
    ],
)
def test_no_answer_text_names_the_reset_reason(reason: int, text: str) -> None:
    assert no_answer_text("no upstream", reason) == text

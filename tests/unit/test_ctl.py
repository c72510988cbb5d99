"""lb ctl without a node: where it finds the admin listener, and how it fails."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from lb.ctl import EXIT_FAILED, EXIT_OK, EXIT_USAGE, run

FARM = """
[farm]
name = "f"
secret = "{secret}"
link_security = "plaintext"
[[services]]
name = "web"
protocol = "http"
[[nodes]]
name = "a"
forward = "127.0.0.1:{forward}"
listen = {{ web = "127.0.0.1:1" }}
apps = {{ web = "127.0.0.1:2" }}
{admin}
"""


def _farm(tmp_path: Path, forward: int, admin: str = "") -> str:
    path = tmp_path / "farm.toml"
    path.write_text(FARM.format(secret="s" * 40, forward=forward, admin=admin))
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ctl(*args: str | None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    command, admin, token, config, node = args
    assert command is not None
    code = run(command, admin, token, config, node, out, err)
    return code, out.getvalue(), err.getvalue()


def test_no_admin_listener_configured(tmp_path: Path) -> None:
    code, _, err = _ctl("status", None, None, _farm(tmp_path, 7100), None)
    assert code == EXIT_USAGE
    assert "no admin listener" in err


def test_health_without_admin_probes_the_link_listener(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        config = _farm(tmp_path, listener.getsockname()[1])
        code, out, _ = _ctl("health", None, None, config, None)
    assert code == EXIT_OK
    assert "link listener accepts" in out
    code, _, err = _ctl("health", None, None, _farm(tmp_path, _free_port()), None)
    assert code == EXIT_FAILED
    assert err.startswith("lb ctl health: ")


def test_config_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LB_CONFIG", _farm(tmp_path, 7100))
    code, _, err = _ctl("members", None, None, None, None)
    assert (code, "no admin listener" in err) == (EXIT_USAGE, True)
    monkeypatch.delenv("LB_CONFIG")
    code, _, err = _ctl("members", None, None, None, None)
    assert code == EXIT_USAGE and "--admin" in err


def test_unreachable_admin_listener(tmp_path: Path) -> None:
    port = _free_port()
    admin = f'admin = "127.0.0.1:{port}"'
    code, _, err = _ctl("status", None, None, _farm(tmp_path, 7100, admin), None)
    assert code == EXIT_FAILED
    assert "cannot reach the admin listener" in err


def test_bad_admin_address() -> None:
    code, _, err = _ctl("status", "not-an-address", None, None, None)
    assert code == EXIT_USAGE and "--admin" in err


def test_status_does_not_call_the_load_sessions() -> None:
    """A node's load is what it serves at this moment (requests and tcp flows in
    progress, tunnels; docs/protocol.md "Liveness and load"), not the sessions homed on
    it: a node home to thousands of idle sessions says 0."""
    from lb.ctl import _print_status

    status = {
        "node": "a",
        "farm": "f",
        "workers": 2,
        "draining": False,
        "apps": {"web": "up"},
        "load": 3,
        "directory": {"entries": 55},
        "live": ["a", "b"],
        "members": {"a": "alive", "b": "alive"},
        "loads": {"a": 3, "b": 0},
    }
    out = io.StringIO()
    _print_status(status, out)
    [line] = [x for x in out.getvalue().splitlines() if x.startswith("load")]
    assert line == "load      3 in progress (requests, tcp flows, tunnels)", line

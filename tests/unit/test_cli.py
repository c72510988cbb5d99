"""Tests of lb.cli: check-config output and exit codes, extractors, version, usage errors."""

from __future__ import annotations

import importlib.metadata
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lb
from lb.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "farm.toml"
LB = Path(sys.executable).parent / "lb"

BAD = """\
[farm]
name = "bad name"
secret = "too short"
cookie_tll = 10

[[services]]
name = "web"
protocol = "udp"

[[nodes]]
name = "a"
forward = "127.0.0.1:7101"
listen = { web = "127.0.0.1:8101" }
apps = { web = "127.0.0.1:9101" }

[[nodes]]
name = "b"
forward = "127.0.0.1:7101"
listen = { web = "127.0.0.1:8102" }
apps = { wb = "127.0.0.1:9102" }
"""
BAD_KEYS = [
    "farm.name",
    "farm.secret",
    "farm.link_certs",
    "farm.cookie_tll",
    "services[0].protocol",
    "nodes[1].forward",
    "nodes[1].apps.wb",
    "nodes[1].apps.web",
]


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    return path


def error_keys(stderr: str) -> list[str]:
    """Keys of the "  key: message" lines that follow the "FILE: N error(s)" header."""
    lines = stderr.splitlines()
    return [line.strip().split(": ", 1)[0] for line in lines[1:] if line.startswith("  ")]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """examples/farm.toml with the link certificates `lb certs` makes for it."""
    from lb.certs import ensure_certs

    shutil.copy(EXAMPLE, tmp_path / "farm.toml")
    ensure_certs(tmp_path / "certs", "example", ["a", "b", "c"])
    return tmp_path / "farm.toml"


def test_check_config_ok(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(example)]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: farm 'example', 3 nodes (a, b, c), 1 service (web)\n"
    assert err == ""


def test_check_config_with_node(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(example), "--node", "b"]) == 0
    assert "node 'b'" in capsys.readouterr().out
    assert main(["check-config", str(example), "--node", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{example}: 1 error(s)\n")
    assert "  --node: unknown node 'x'; the farm has: a, b, c" in err


def test_check_config_and_run_read_the_file_lb_config_names(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `lb ctl` and the image's health check do: the container sets LB_CONFIG."""
    monkeypatch.setenv("LB_CONFIG", str(example))
    monkeypatch.delenv("LB_NODE", raising=False)
    assert main(["check-config", "--node", "c"]) == 0
    assert capsys.readouterr().out.startswith("ok: farm 'example', 3 nodes")
    assert main(["run"]) == 2  # the file was read: the node is what is missing
    assert "a, b, c" in capsys.readouterr().err
    monkeypatch.delenv("LB_CONFIG")
    assert main(["check-config"]) == 2
    assert "set LB_CONFIG" in capsys.readouterr().err


def test_check_config_node_that_cannot_start_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid file whose node cannot start on this host: check-config --node says so, by
    key, instead of `lb run` failing at start (RFC 6761: .invalid never resolves)."""
    path = tmp_path / "farm.toml"
    path.write_text(
        '[farm]\nname = "f"\nsecret = "0123456789abcdef0123456789abcdef0123"\n'
        'link_security = "plaintext"\n'
        '[[services]]\nname = "web"\nprotocol = "http"\n'
        '[[nodes]]\nname = "a"\nforward = "127.0.0.1:7101"\n'
        'listen = { web = "127.0.0.1:8101" }\napps = { web = "127.0.0.1:9101" }\n'
        '[[nodes]]\nname = "b"\nforward = "no-such-host.invalid:7102"\n'
        'listen = { web = ["127.0.0.1:8102", "also-none.invalid:8103"] }\n'
        'apps = { web = "127.0.0.1:9102" }\nadmin = "admin-none.invalid:9000"\n'
        'admin_token = "0123456789abcdef0123456789abcdef"\n'
    )
    assert main(["check-config", str(path)]) == 0  # the file itself is valid
    assert main(["check-config", str(path), "--node", "a"]) == 0
    capsys.readouterr()
    assert main(["check-config", str(path), "--node", "b"]) == 1
    err = capsys.readouterr().err
    assert error_keys(err) == ["nodes[1].forward", "nodes[1].listen.web[1]", "nodes[1].admin"]
    assert "host 'no-such-host.invalid' does not resolve here" in err


def test_check_config_node_without_its_link_certificates(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (example.parent / "certs" / "b.key").unlink()
    assert main(["check-config", str(example), "--node", "a"]) == 0
    capsys.readouterr()
    assert main(["check-config", str(example), "--node", "b"]) == 1
    err = capsys.readouterr().err
    assert error_keys(err) == ["farm.link_certs"]
    assert "lb certs" in err


def test_check_config_lists_every_error(bad_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(bad_file)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == f"{bad_file}: {len(BAD_KEYS)} error(s)"
    assert sorted(error_keys(err)) == sorted(BAD_KEYS)
    assert "did you mean 'cookie_ttl'?" in err


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "none.toml"
    assert main(["check-config", str(path)]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_run_with_bad_config_exits_2(bad_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(bad_file), "--node", "a"]) == 2
    assert sorted(error_keys(capsys.readouterr().err)) == sorted(BAD_KEYS)


def test_a_worker_that_cannot_read_the_farm_file_says_it_could_not_start(
    bad_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker reads the farm file again; if that fails (the file changed since the
    supervisor read it), its exit code is the one its supervisor does not restart on a
    first start, not a usage error it would restart every second."""
    from lb.node.workers import EXIT_START_FAILED

    argv = ["run", "--config", str(bad_file), "--node", "a", "--worker", "1"]
    assert main(argv) == EXIT_START_FAILED
    assert sorted(error_keys(capsys.readouterr().err)) == sorted(BAD_KEYS)


def test_run_needs_a_node_choice(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LB_NODE", raising=False)
    assert main(["run", "--config", str(example)]) == 2
    err = capsys.readouterr().err
    assert "--node" in err and "a, b, c" in err
    monkeypatch.setenv("LB_NODE", "nope")
    assert main(["run", "--config", str(example)]) == 2
    assert "LB_NODE: unknown node 'nope'" in capsys.readouterr().err


def test_extractors_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extractors"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    registered = {ep.name for ep in importlib.metadata.entry_points(group="lb.extractors")}
    assert {"home-cookie", "uri-path", "query-param", "client-ip"} <= registered
    assert registered <= listed
    for line in out.splitlines():
        if line.split()[0] in {"home-cookie", "client-ip"}:
            assert "lb" in line.split()[1:]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    # the build is named: compiled modules load from extension files, pure ones from .py
    from lb.wire import http1

    kind = "pure Python" if http1.__file__.endswith(".py") else "compiled with mypyc"
    assert capsys.readouterr().out.strip() == f"lb {lb.__version__} ({kind})"


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["run"], ["check-config"], ["demo", "--port-base", "80"]],
)
def test_usage_errors_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LB_CONFIG", raising=False)  # else run and check-config read it
    assert main(argv) == 2
    assert capsys.readouterr().err


def test_demo_without_aiohttp_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # aiohttp is an extra (lb[demo]); None in sys.modules makes its import fail as if absent
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    for name in ("lb.demo.run", "lb.demo.app"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "aiohttp" in err
    assert "pip install 'lb[demo]'" in err


def test_console_script_check_config_ok(tmp_path: Path) -> None:
    """The README's steps: copy the example, make its link certificates, check it."""
    shutil.copy(ROOT / "examples" / "farm.toml", tmp_path / "farm.toml")
    without = subprocess.run(
        [str(LB), "check-config", str(tmp_path / "farm.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert without.returncode == 1 and "farm.link_certs" in without.stderr
    assert "lb certs" in without.stderr
    made = subprocess.run(
        [str(LB), "certs", str(tmp_path / "certs"), "--farm", "example", "--nodes", "a,b,c"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert "made the farm CA" in made.stdout
    proc = subprocess.run(
        [str(LB), "check-config", str(tmp_path / "farm.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: farm 'example', 3 nodes")


TLS_EXAMPLE = ROOT / "examples" / "tls-terminate-farm.toml"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_tls_terminate_example_checks_after_its_documented_steps(tmp_path: Path) -> None:
    """The commands the example's comments give, run as written from a copy of the
    repository's top directory, make every file it names: check-config passes."""
    (tmp_path / "examples").mkdir()
    shutil.copy(TLS_EXAMPLE, tmp_path / "examples" / TLS_EXAMPLE.name)
    steps = [
        shlex.split(line.removeprefix("#").strip())
        for line in TLS_EXAMPLE.read_text().splitlines()
        if line.startswith(("#   lb certs ", "#   openssl "))
    ]
    assert [step[:2] for step in steps] == [["lb", "certs"], ["openssl", "req"]]
    for step in steps:
        command = [str(LB), *step[1:]] if step[0] == "lb" else step
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (step, done.stderr)
    proc = subprocess.run(
        [str(LB), "check-config", f"examples/{TLS_EXAMPLE.name}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok: farm 'tls-example', 3 nodes (a, b, c), 1 service (web)\n"
    assert proc.stderr == ""  # no warning either


def test_console_script_check_config_bad(bad_file: Path) -> None:
    proc = subprocess.run(
        [str(LB), "check-config", str(bad_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert sorted(error_keys(proc.stderr)) == sorted(BAD_KEYS)


def test_python_dash_m(bad_file: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lb", "check-config", str(bad_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{bad_file}: {len(BAD_KEYS)} error(s)\n")
    assert sorted(error_keys(proc.stderr)) == sorted(BAD_KEYS)


def test_the_help_lists_every_ctl_action(capsys: pytest.CaptureFixture[str]) -> None:
    # `lb --help` said "status, members, drain, undrain, health": metrics was missing
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "admin listener: status, members, drain, undrain, health, metrics" in text


def test_check_config_warns_of_an_extractor_its_service_never_feeds(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a valid kind in the wrong service: it never matches, and check-config said "ok"
    text = example.read_text()
    chain = '{ kind = "home-cookie" },\n    { kind = "uri-path", prefix = "/cart/", segments = 2 },'
    assert chain in text
    text = text.replace(chain, '{ kind = "home-cookie" },\n    { kind = "sni" },')
    text += """
[[services]]
name = "raw"
protocol = "tcp"
extractors = [{ kind = "header", name = "X-Tenant" }, { kind = "sni" }, { kind = "client-ip" }]
"""
    for port in (1, 2, 3):
        anchor = f'apps = {{ web = "127.0.0.1:910{port}" }}'
        assert anchor in text
        text = text.replace(
            anchor, f'apps = {{ web = "127.0.0.1:910{port}", raw = "127.0.0.1:920{port}" }}'
        ).replace(
            f'listen = {{ web = "127.0.0.1:810{port}" }}',
            f'listen = {{ web = "127.0.0.1:810{port}", raw = "127.0.0.1:820{port}" }}',
        )
    example.write_text(text)
    assert main(["check-config", str(example)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: farm 'example'")
    assert err.splitlines() == [
        "warning: services[0].extractors[1].kind: 'sni' reads a TLS ClientHello; the chain of "
        "protocol 'http' sees none, so it never matches",
        "warning: services[1].extractors[0].kind: 'header' reads an HTTP request; protocol "
        "'tcp' has none to read, so it never matches",
    ]

"""Tests of lb.config: parsing, every-error validation, node selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lb.config import (
    Address,
    ExtractorSpec,
    FarmConfig,
    Limits,
    NodeConfig,
    ServiceConfig,
    load_config,
    parse_config,
    select_node,
)
from lb.errors import ConfigError
from tests.support.config_data import (
    SECRET,
    base,
    errors_of,
    keys_of,
    message_for,
    parse,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# ---------------------------------------------------------------- valid configs


def test_full_config_parses_to_dataclasses() -> None:
    data = base()
    data["farm"].update(previous_secrets=["p" * 32], cookie_name="home", cookie_ttl=3600)
    data["limits"] = {"head_bytes": 2048, "head_timeout": 2, "ping_interval": 0.5}
    data["log"] = {"level": "debug", "format": "json"}
    data["services"] = [
        {
            "name": "web",
            "protocol": "http",
            "extractors": [
                {"kind": "home-cookie"},
                {"kind": "uri-path", "segments": 2, "prefix": "/cart/"},
            ],
        },
        {"name": "db.tcp", "protocol": "tcp"},
    ]
    data["nodes"] = [
        {
            "name": "a",
            "forward": "[::1]:7101",
            "weight": 5,
            "workers": 3,
            "listen": {"web": "127.0.0.1:8101", "db.tcp": "127.0.0.1:8201"},
            "apps": {"web": "app.internal:9101", "db.tcp": "[::1]:9201"},
        }
    ]
    cfg = parse_config(data, base_dir=Path("."), source="x.toml")
    assert cfg == FarmConfig(
        name="f1",
        secret=SECRET.encode(),
        previous_secrets=(b"p" * 32,),
        link_security="plaintext",
        cookie_name="home",
        cookie_ttl=3600,
        limits=Limits(head_bytes=2048, head_timeout=2.0, ping_interval=0.5),
        log_level="debug",
        log_format="json",
        services={
            "web": ServiceConfig(
                "web",
                "http",
                (
                    ExtractorSpec("home-cookie", {}),
                    ExtractorSpec("uri-path", {"segments": 2, "prefix": "/cart/"}),
                ),
            ),
            "db.tcp": ServiceConfig("db.tcp", "tcp", (ExtractorSpec("client-ip", {}),)),
        },
        nodes={
            "a": NodeConfig(
                "a",
                Address("::1", 7101),
                5,
                {"web": (Address("127.0.0.1", 8101),), "db.tcp": (Address("127.0.0.1", 8201),)},
                {"web": Address("app.internal", 9101), "db.tcp": Address("::1", 9201)},
                3,
            )
        },
        source="x.toml",
    )
    assert isinstance(cfg.limits.head_timeout, float)
    assert list(cfg.services) == ["web", "db.tcp"]


def test_defaults() -> None:
    cfg = parse(base())
    assert cfg.cookie_name == "lbhome"
    assert cfg.cookie_ttl == 86400
    assert cfg.previous_secrets == ()
    assert cfg.limits == Limits(
        head_bytes=16384,
        head_timeout=5.0,
        connect_timeout=3.0,
        pending_timeout=5.0,
        idle_timeout=300.0,
        max_flows=10000,
        flow_window=262144,
        ping_interval=0.5,
        dead_after=2.5,
        max_connections=20000,
        drain_timeout=30.0,
        suspect_after=1.0,
        directory_entries=100000,
        directory_ttl=3600.0,
    )
    assert (cfg.log_level, cfg.log_format) == ("info", "console")
    assert cfg.services["web"].extractors == (ExtractorSpec("home-cookie", {}),)
    assert [n.weight for n in cfg.nodes.values()] == [1, 1, 1]
    assert cfg.source == "<memory>"


def test_tcp_default_extractor_is_client_ip() -> None:
    data = base()
    data["services"][0]["protocol"] = "tcp"
    assert parse(data).services["web"].extractors == (ExtractorSpec("client-ip", {}),)


def test_secret_is_not_in_repr() -> None:
    data = base()
    data["farm"]["previous_secrets"] = ["q" * 33]
    text = repr(parse(data))
    assert SECRET not in text and "q" * 33 not in text


def example(name: str, tmp: Path) -> Path:
    """An example farm file copied to `tmp`, with the link certificates `lb certs` makes."""
    from lb.certs import ensure_certs

    shutil.copy(EXAMPLES / name, tmp / name)
    ensure_certs(tmp / "certs", "example", ["a", "b", "c"])
    return tmp / name


@pytest.mark.parametrize(("name", "links"), [("farm.toml", "mtls"), ("tcp-farm.toml", "plaintext")])
def test_examples_load(name: str, links: str, tmp_path: Path) -> None:
    cfg = load_config(example(name, tmp_path))
    assert list(cfg.nodes) == ["a", "b", "c"]
    assert cfg.link_security == links
    assert len(cfg.secret) >= 32
    forwards = {str(n.forward) for n in cfg.nodes.values()}
    assert len(forwards) == 3


def test_example_farm_shape(tmp_path: Path) -> None:
    cfg = load_config(example("farm.toml", tmp_path))
    assert cfg.name == "example"
    web = cfg.services["web"]
    assert web.protocol == "http"
    assert [s.kind for s in web.extractors] == ["home-cookie", "uri-path"]
    assert dict(web.extractors[1].options) == {"prefix": "/cart/", "segments": 2}
    for i, node in enumerate(cfg.nodes.values(), start=1):
        assert node.forward == Address("127.0.0.1", 7100 + i)
        assert node.listen == {"web": (Address("127.0.0.1", 8100 + i),)}
        assert node.apps == {"web": Address("127.0.0.1", 9100 + i)}


def test_tcp_example_uses_client_ip() -> None:
    cfg = load_config(EXAMPLES / "tcp-farm.toml")
    [svc] = cfg.services.values()
    assert svc.protocol == "tcp"
    assert [s.kind for s in svc.extractors] == ["client-ip"]


# ---------------------------------------------------------------- every error at once


def test_many_mistakes_are_all_reported() -> None:
    data = base()
    data["farm"] = {
        "name": "bad name!",
        "secret": "short",
        "cookie_ttl": 10,
        "colour": "blue",
    }
    data["limits"] = {"head_bytes": 10, "max_flows": True}
    data["log"] = {"level": "loud"}
    data["services"] = [
        {"name": "web", "protocol": "udp"},
        {"name": "web", "protocol": "http"},
    ]
    data["nodes"][0]["forward"] = "nonsense"
    data["nodes"][1]["name"] = "a"
    data["nodes"][1]["weight"] = 0
    data["nodes"][2]["listen"] = {}
    data["nodes"][2]["apps"] = {"wbe": "127.0.0.1:9103"}
    data["nodes"][2]["forward"] = "127.0.0.1:7102"
    errors = errors_of(data)
    assert {k for k, _ in errors} == {
        "farm.name",
        "farm.secret",
        "farm.link_certs",
        "farm.cookie_ttl",
        "farm.colour",
        "limits.head_bytes",
        "limits.max_flows",
        "log.level",
        "services[0].protocol",
        "services[1].name",
        "nodes[0].forward",
        "nodes[1].name",
        "nodes[1].weight",
        "nodes[2].listen.web",
        "nodes[2].apps.wbe",
        "nodes[2].apps.web",
        "nodes[2].forward",
    }
    assert len(errors) == 17
    assert all(message for _, message in errors)
    assert "did you mean 'web'" in message_for(errors, "nodes[2].apps.wbe")
    assert "nodes[1].forward" in message_for(errors, "nodes[2].forward")


def test_missing_sections() -> None:
    assert keys_of({}) == {"farm", "services", "nodes"}
    assert keys_of({"farm": "x", "services": [], "nodes": {}}) == {"farm", "services", "nodes"}


def test_config_error_message_lists_every_error() -> None:
    data = base()
    data["farm"]["cookie_ttl"] = 1
    data["nodes"][0]["weight"] = 5000
    with pytest.raises(ConfigError) as info:
        parse(data)
    text = str(info.value)
    assert "farm.cookie_ttl" in text and "nodes[0].weight" in text


# ---------------------------------------------------------------- farm table


@pytest.mark.parametrize("secret", ["", "x" * 31, "é" * 15])
def test_short_secret_refused(secret: str) -> None:
    data = base()
    data["farm"]["secret"] = secret
    message = message_for(errors_of(data), "farm.secret")
    assert "32" in message and "secrets.token_urlsafe" in message


def test_secret_counts_utf8_bytes() -> None:
    data = base()
    data["farm"]["secret"] = "é" * 16  # 16 characters, 32 bytes
    assert parse(data).secret == ("é" * 16).encode()


def test_short_previous_secret_refused() -> None:
    data = base()
    data["farm"]["previous_secrets"] = ["p" * 32, "short", 7]
    assert keys_of(data) == {"farm.previous_secrets[1]", "farm.previous_secrets[2]"}


def test_secret_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "secret.txt").write_bytes(b"k" * 40 + b"\n")
    (tmp_path / "conf" / "farm.toml").write_text(
        """
[farm]
name = "f"
secret_file = "secret.txt"
link_security = "plaintext"
[[services]]
name = "web"
protocol = "http"
[[nodes]]
name = "a"
forward = "127.0.0.1:7101"
listen = { web = "127.0.0.1:8101" }
apps = { web = "127.0.0.1:9101" }
"""
    )
    cfg = load_config(tmp_path / "conf" / "farm.toml")
    assert cfg.secret == b"k" * 40
    assert cfg.source == str(tmp_path / "conf" / "farm.toml")


def test_secret_file_keeps_inner_whitespace(tmp_path: Path) -> None:
    (tmp_path / "s").write_bytes(b" " + b"k" * 40 + b" \r\n")
    data = base()
    del data["farm"]["secret"]
    data["farm"]["secret_file"] = "s"
    assert parse(data, tmp_path).secret == b" " + b"k" * 40 + b" "


def test_secret_file_problems(tmp_path: Path) -> None:
    data = base()
    del data["farm"]["secret"]
    data["farm"]["secret_file"] = "missing.txt"
    assert "cannot read" in message_for(errors_of(data, tmp_path), "farm.secret_file")
    (tmp_path / "short").write_text("abc\n")
    data["farm"]["secret_file"] = "short"
    assert "32" in message_for(errors_of(data, tmp_path), "farm.secret_file")


def test_secret_and_secret_file_exclusive(tmp_path: Path) -> None:
    data = base()
    data["farm"]["secret_file"] = "x"
    assert "exactly one" in message_for(errors_of(data, tmp_path), "farm.secret")
    del data["farm"]["secret"], data["farm"]["secret_file"]
    assert "required" in message_for(errors_of(data, tmp_path), "farm.secret")


def test_missing_link_security_means_mtls_which_needs_link_certs() -> None:
    data = base()
    del data["farm"]["link_security"]
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"farm.link_certs"}
    message = message_for(errors, "farm.link_certs")
    assert "lb certs" in message and 'link_security = "plaintext"' in message


def test_link_security_values() -> None:
    data = base()
    data["farm"]["link_security"] = "tls"
    message = message_for(errors_of(data), "farm.link_security")
    assert '"mtls"' in message and "did you mean" in message
    data["farm"]["link_security"] = "none"
    assert keys_of(data) == {"farm.link_security"}


def test_mtls_links_with_a_certificate_directory(tmp_path: Path) -> None:
    from lb.certs import ensure_certs

    ensure_certs(tmp_path / "certs", "f1", ["a"])
    data = base()
    data["farm"]["link_security"] = "mtls"
    data["farm"]["link_certs"] = "certs"
    cfg = parse_config(data, base_dir=tmp_path)
    assert cfg.link_security == "mtls"
    assert cfg.link_certs == tmp_path / "certs"
    data["farm"]["link_certs"] = "nowhere"
    assert "no farm CA" in message_for(errors_of(data, tmp_path), "farm.link_certs")


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "é"])
def test_bad_farm_name(name: str) -> None:
    data = base()
    data["farm"]["name"] = name
    assert keys_of(data) == {"farm.name"}


@pytest.mark.parametrize("cookie", ["", "a b", "a;b", "a=b", 'q"'])
def test_bad_cookie_name(cookie: str) -> None:
    data = base()
    data["farm"]["cookie_name"] = cookie
    assert keys_of(data) == {"farm.cookie_name"}


@pytest.mark.parametrize(
    ("ttl", "ok"), [(59, False), (60, True), (31536000, True), (31536001, False)]
)
def test_cookie_ttl_bounds(ttl: int, ok: bool) -> None:
    data = base()
    data["farm"]["cookie_ttl"] = ttl
    if ok:
        assert parse(data).cookie_ttl == ttl
    else:
        assert keys_of(data) == {"farm.cookie_ttl"}


# ---------------------------------------------------------------- log (limits: elsewhere)


def test_bad_log() -> None:
    data = base()
    data["log"] = {"level": "trace", "format": "xml"}
    assert keys_of(data) == {"log.level", "log.format"}
    data["log"] = []
    assert keys_of(data) == {"log"}


# ---------------------------------------------------------------- unknown keys


def test_unknown_keys_with_suggestions() -> None:
    data = base()
    data["farm"]["secert"] = "x"
    data["limits"] = {"head_byte": 2048}
    data["nodes"][0]["forwrd"] = "x"
    data["services"][0]["extractor"] = []
    data["servics"] = []
    data["zzz"] = 1
    errors = errors_of(data)
    assert {k for k, _ in errors} == {
        "farm.secert",
        "limits.head_byte",
        "nodes[0].forwrd",
        "services[0].extractor",
        "servics",
        "zzz",
    }
    assert message_for(errors, "farm.secert") == "unknown key; did you mean 'secret'?"
    assert message_for(errors, "limits.head_byte") == "unknown key; did you mean 'head_bytes'?"
    assert message_for(errors, "nodes[0].forwrd") == "unknown key; did you mean 'forward'?"
    assert "did you mean 'extractors'" in message_for(errors, "services[0].extractor")
    assert "did you mean 'services'" in message_for(errors, "servics")
    assert "did you mean" not in message_for(errors, "zzz")


# ---------------------------------------------------------------- services and extractors


def test_duplicate_service_names() -> None:
    data = base()
    data["services"].append({"name": "web", "protocol": "tcp"})
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"services[1].name"}
    assert "services[0]" in message_for(errors, "services[1].name")


def test_service_shape_errors() -> None:
    data = base()
    data["services"] = [
        "web",
        {"protocol": "http"},
        {"name": "api", "protocol": "http", "extractors": "home-cookie"},
        {"name": "api2", "protocol": "http", "extractors": []},
        {"name": "api3", "protocol": "http", "extractors": [{"segments": 2}, 5]},
    ]
    keys = keys_of(data)
    assert {
        "services[0]",
        "services[1].name",
        "services[2].extractors",
        "services[3].extractors",
        "services[4].extractors[0].kind",
        "services[4].extractors[1]",
    } <= keys
    # nodes do not list api, api2, api3: reported too
    assert "nodes[0].listen.api" in keys


def test_an_entry_that_is_not_a_table_hides_no_other_extractor_error() -> None:
    data = base()
    data["services"][0]["extractors"] = [
        {"kind": "client-ip", "foo": 1},
        "sni",
        {"kind": "uri-path", "segmnts": 2},
        {"kind": "no-such-kind"},
    ]
    errors = errors_of(data)
    assert {k for k, _ in errors} == {
        "services[0].extractors[0].foo",
        "services[0].extractors[1]",
        "services[0].extractors[2].segmnts",
        "services[0].extractors[3].kind",
    }
    assert message_for(errors, "services[0].extractors[2].segmnts").endswith(
        "did you mean 'segments'?"
    )


def test_extractor_errors_from_registry_are_merged() -> None:
    data = base()
    data["services"][0]["extractors"] = [{"kind": "no-such-extractor"}]
    data["farm"]["cookie_ttl"] = 1
    keys = keys_of(data)
    assert "farm.cookie_ttl" in keys
    extractor_keys = keys - {"farm.cookie_ttl"}
    assert extractor_keys
    assert all(k.startswith("services[0].extractors") for k in extractor_keys)


def test_extractor_options_checked_by_registry() -> None:
    data = base()
    data["services"][0]["extractors"] = [
        {"kind": "home-cookie"},
        {"kind": "uri-path", "segments": "two", "prefix": "/cart/"},
    ]
    keys = keys_of(data)
    assert keys
    assert all(k.startswith("services[0].extractors") for k in keys)


def test_unknown_extractor_option_gets_a_suggestion() -> None:
    data = base()
    data["services"][0]["extractors"] = [
        {"kind": "uri-path", "segmnts": 2},
        {"kind": "header", "nmae": "X-User", "zzz": 1},
        {"kind": "client-ip", "name": "x"},
    ]
    errors = errors_of(data)
    assert {k for k, _ in errors} == {
        "services[0].extractors[0].segmnts",
        "services[0].extractors[1].nmae",
        "services[0].extractors[1].name",
        "services[0].extractors[1].zzz",
        "services[0].extractors[2].name",
    }
    assert message_for(errors, "services[0].extractors[0].segmnts") == (
        "unknown option (known options: segments, prefix); did you mean 'segments'?"
    )
    assert message_for(errors, "services[0].extractors[1].nmae").endswith("did you mean 'name'?")
    assert "did you mean" not in message_for(errors, "services[0].extractors[1].zzz")
    assert "did you mean" not in message_for(errors, "services[0].extractors[2].name")


# ---------------------------------------------------------------- nodes: see test_config_nodes


# ---------------------------------------------------------------- loading files


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[farm]\nname = "x"\nsecret = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [(key, message)] = info.value.errors
    assert key == str(path)
    assert "line 3" in message and "column" in message


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [(key, message)] = info.value.errors
    assert key == str(path) and "cannot read" in message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[farm]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [k for k, _ in info.value.errors] == [str(path)]


# ---------------------------------------------------------------- node selection


def test_node_lookup() -> None:
    cfg = parse(base())
    assert cfg.node("b").name == "b"
    with pytest.raises(ConfigError) as info:
        cfg.node("x")
    assert info.value.errors == [("--node", "unknown node 'x'; the farm has: a, b, c")]


def test_select_node_order() -> None:
    cfg = parse(base())
    assert select_node(cfg, "c", environ={"LB_NODE": "b"}).name == "c"
    assert select_node(cfg, None, environ={"LB_NODE": "b"}).name == "b"
    with pytest.raises(ConfigError) as info:
        select_node(cfg, None, environ={})
    [(key, message)] = info.value.errors
    assert key == "--node" and "a, b, c" in message and "LB_NODE" in message
    with pytest.raises(ConfigError) as info:
        select_node(cfg, None, environ={"LB_NODE": "zz"})
    assert [k for k, _ in info.value.errors] == ["LB_NODE"]


def test_select_node_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse(base())
    monkeypatch.setenv("LB_NODE", "c")
    assert select_node(cfg, None).name == "c"
    monkeypatch.setenv("LB_NODE", "")
    with pytest.raises(ConfigError):
        select_node(cfg, None)


def test_single_node_farm_needs_no_name() -> None:
    data = base()
    data["nodes"] = data["nodes"][:1]
    cfg = parse(data)
    assert select_node(cfg, None, environ={}).name == "a"
    with pytest.raises(ConfigError):
        select_node(cfg, "b", environ={})

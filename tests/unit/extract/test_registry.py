"""Tests for lb.extract.registry: entry-point discovery and building chains from specs."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from lb.errors import ConfigError, ExtractorError
from lb.extract import (
    ENTRY_POINT_GROUP,
    ExtractorContext,
    FactoryInfo,
    Identifier,
    Seen,
    Verdict,
    available,
    build_chain,
    builtin,
    load_errors,
    refresh,
)
from lb.extract.registry import ExtractorFactory, scan_entry_points
from lb.wire.http import parse_request_head

CTX = ExtractorContext()
BUILTINS: dict[str, ExtractorFactory] = {
    "client-ip": builtin.make_client_ip,
    "home-cookie": builtin.make_home_cookie,
    "query-param": builtin.make_query_param,
    "uri-path": builtin.make_uri_path,
}


def entry_point(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@pytest.fixture
def rescan() -> Iterator[None]:
    refresh()
    yield
    refresh()


# -- discovery ------------------------------------------------------------------------


def test_the_four_builtins_come_from_the_installed_entry_points() -> None:
    found = available()
    for name, factory in BUILTINS.items():
        assert found[name] == FactoryInfo(name, factory, "lb")
        assert name not in load_errors()


def test_available_returns_a_copy() -> None:
    available().clear()
    assert set(BUILTINS) <= set(available())


def test_scan_is_cached_until_refresh(monkeypatch: pytest.MonkeyPatch, rescan: None) -> None:
    calls: list[str] = []

    def fake_entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        calls.append(group)
        return [entry_point("only", "lb.extract.builtin:make_client_ip")]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    assert set(available()) == {"only"}
    assert set(available()) == {"only"}
    assert calls == [ENTRY_POINT_GROUP]
    refresh()
    available()
    assert calls == [ENTRY_POINT_GROUP, ENTRY_POINT_GROUP]


def test_scan_skips_and_reports_entry_points_that_cannot_be_used() -> None:
    factories, errors = scan_entry_points(
        [
            entry_point("uri-path", "lb.extract.builtin:make_uri_path"),
            entry_point("missing", "lb.no_such_module_here:make"),
            entry_point("not-callable", "lb.extract.builtin:MAX_SEGMENTS"),
            entry_point("uri-path", "lb.extract.builtin:make_client_ip"),
        ]
    )
    assert factories == {"uri-path": FactoryInfo("uri-path", builtin.make_uri_path, None)}
    assert set(errors) == {"missing", "not-callable", "uri-path"}
    assert "ModuleNotFoundError" in errors["missing"]
    assert "not callable" in errors["not-callable"]
    assert "ignored" in errors["uri-path"]


def _distribution(root: Path, name: str, entry_points: str) -> importlib.metadata.Distribution:
    """A real installed-distribution record (dist-info) under ``root``."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}")
    [dist] = importlib.metadata.distributions(path=[str(root)])
    return dist


def test_a_plugin_cannot_take_a_builtin_name_even_when_found_first(tmp_path: Path) -> None:
    # a plugin registering `client-ip` found before lb (sys.path order decides that) used
    # to replace the built-in for every farm of the machine, silently at check-config
    plugin = _distribution(tmp_path, "lb-shadow", "client-ip = lb.extract.builtin:make_uri_path\n")
    [lb_client_ip] = [
        ep
        for ep in importlib.metadata.distribution("lb").entry_points
        if ep.group == ENTRY_POINT_GROUP and ep.name == "client-ip"
    ]
    factories, errors = scan_entry_points([*plugin.entry_points, lb_client_ip])
    assert factories == {"client-ip": FactoryInfo("client-ip", builtin.make_client_ip, "lb")}
    assert errors == {
        "client-ip": "lb.extract.builtin:make_uri_path from lb-shadow ignored: "
        "the name is taken by lb"
    }


def test_between_two_plugins_the_first_found_keeps_the_name(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = _distribution(tmp_path / "one", "lb-one", "same = lb.extract.builtin:make_uri_path\n")
    two = _distribution(tmp_path / "two", "lb-two", "same = lb.extract.builtin:make_client_ip\n")
    factories, errors = scan_entry_points([*one.entry_points, *two.entry_points])
    assert factories == {"same": FactoryInfo("same", builtin.make_uri_path, "lb-one")}
    assert "from lb-two ignored: the name is taken by lb-one" in errors["same"]


def test_build_chain_explains_a_kind_that_failed_to_load(
    monkeypatch: pytest.MonkeyPatch, rescan: None
) -> None:
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda *, group: [entry_point("tls-sni", "lb.no_such_module_here:make")],
    )
    with pytest.raises(ConfigError) as info:
        build_chain([("tls-sni", {})], CTX)
    [(key, message)] = info.value.errors
    assert key == "extractors[0].kind"
    assert "failed to load" in message
    assert "ModuleNotFoundError" in message


# -- building chains ------------------------------------------------------------------


def test_build_chain_in_spec_order() -> None:
    chain = build_chain(
        [("home-cookie", {}), ("uri-path", {"segments": 2}), ("client-ip", {})],
        ExtractorContext(home_cookie_name="h"),
    )
    assert [extractor.name for extractor in chain] == ["home-cookie", "uri-path", "client-ip"]
    head = b"GET /a/b/c HTTP/1.1\r\nCookie: h=v\r\n\r\n"
    seen = Seen(head, False, ("192.0.2.1", 1), parse_request_head(head, 1024), 0.0)
    assert [extractor.extract(seen) for extractor in chain] == [
        Identifier("home-cookie", "v", "home-cookie"),
        Identifier("uri", "/a/b", "hash"),
        Identifier("client-ip", "192.0.2.1", "hash"),
    ]


def test_empty_specs_give_an_empty_chain() -> None:
    assert build_chain([], CTX) == []


def test_build_chain_reports_every_bad_spec_at_once() -> None:
    specs: list[tuple[str, Mapping[str, Any]]] = [
        ("client-ip", {}),
        ("uri-path", {"segments": 40, "prefix": "nope"}),
        ("foo", {}),
        ("query-param", {}),
        ("home-cookie", {"extra": 1}),
    ]
    names = sorted(available())  # the built-ins plus any plugin installed here
    assert set(BUILTINS) <= set(names)
    installed = ", ".join(names)
    with pytest.raises(ConfigError) as info:
        build_chain(specs, CTX, key_prefix="services.web.extractors")
    assert info.value.errors == [
        ("services.web.extractors[1].segments", "must be an integer from 1 to 16"),
        ("services.web.extractors[1].prefix", "must be a string starting with '/'"),
        (
            "services.web.extractors[2].kind",
            f"unknown extractor 'foo'; installed: {installed}",
        ),
        ("services.web.extractors[3].name", "is required (the query parameter to read)"),
        (
            "services.web.extractors[4].extra",
            "unknown option (known options: none)",
        ),
    ]


def test_options_that_are_not_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        build_chain([("uri-path", [1, 2])], CTX)  # type: ignore[list-item]
    assert info.value.errors == [("extractors[0]", "options must be a table, not list")]


def test_kind_that_is_not_a_string() -> None:
    with pytest.raises(ConfigError) as info:
        build_chain([(3, {})], CTX)  # type: ignore[list-item]
    assert info.value.errors == [("extractors[0].kind", "must be a string naming an extractor")]


# -- plugin factories that misbehave (explicit factory table) -------------------------


class Plugin:
    name = "plugin"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        return Verdict.NO_MATCH


def good(options: Mapping[str, Any], ctx: ExtractorContext) -> Plugin:
    return Plugin()


def crashes(options: Mapping[str, Any], ctx: ExtractorContext) -> Plugin:
    raise RuntimeError("plugin bug")


def free_text_error(options: Mapping[str, Any], ctx: ExtractorContext) -> Plugin:
    raise ExtractorError("the moon is in the wrong phase")


def not_an_extractor(options: Mapping[str, Any], ctx: ExtractorContext) -> object:
    return object()


TABLE = {
    name: FactoryInfo(name, factory, "lb-plugin-test")  # type: ignore[arg-type]
    for name, factory in [
        ("good", good),
        ("crashes", crashes),
        ("free-text", free_text_error),
        ("not-an-extractor", not_an_extractor),
    ]
}


def test_explicit_factory_table() -> None:
    chain = build_chain([("good", {})], CTX, factories=TABLE)
    assert len(chain) == 1
    assert isinstance(chain[0], Plugin)


def test_misbehaving_factories_are_reported_by_spec() -> None:
    specs: list[tuple[str, Mapping[str, Any]]] = [
        ("crashes", {}),
        ("free-text", {}),
        ("not-an-extractor", {}),
        ("uri-path", {}),
    ]
    with pytest.raises(ConfigError) as info:
        build_chain(specs, CTX, factories=TABLE)
    errors = dict(info.value.errors)
    assert list(errors) == ["extractors[0]", "extractors[1]", "extractors[2]", "extractors[3].kind"]
    assert "RuntimeError: plugin bug" in errors["extractors[0]"]
    assert errors["extractors[1]"] == "the moon is in the wrong phase"
    assert "not an extractor" in errors["extractors[2]"]
    assert errors["extractors[3].kind"] == (
        "unknown extractor 'uri-path'; installed: crashes, free-text, good, not-an-extractor"
    )


def test_a_misspelt_kind_gets_the_closest_installed_one() -> None:
    with pytest.raises(ConfigError) as info:
        build_chain([("uri-pth", {}), ("zzzz", {})], CTX, key_prefix="services.web.extractors")
    (key, typo), (_, far) = info.value.errors
    assert key == "services.web.extractors[0].kind"
    assert typo.endswith("(did you mean 'uri-path'?)"), typo
    assert "did you mean" not in far, far

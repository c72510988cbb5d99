"""Config: the generic walker (key tables, defaults, ordering rules) and the docs of every key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lb.config.model import limit_keys
from lb.config.schema import FARM, LOG, NODE, SERVICE, TLS
from lb.config.spec import (
    ABSENT,
    INVALID,
    NONE,
    Ctx,
    Derived,
    Invalid,
    Key,
    Walker,
    array_of,
    complete,
    integer,
    seconds,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _even(value: Any, ctx: Ctx) -> int:
    if not isinstance(value, int) or value % 2:
        raise Invalid("must be even")
    return value


KEYS = (
    Key("size", integer(1, 10), 4),
    Key("lo", seconds(10.0), 1),
    Key("mid", seconds(10.0), Derived(lambda ctx: ctx.row["lo"] * 2), above="lo", below="hi"),
    Key("hi", seconds(10.0), 5, above="lo", why="hi is the ceiling", unit=" s"),
    Key("must", _even, required="required: an even number"),
    Key("maybe", _even, NONE),
    Key("handled", _even, ABSENT),
    Key("evens", array_of(_even), []),
)


def walk(raw: Any) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    walker = Walker(Path("."))
    return walker.walk(raw, KEYS, "t"), walker.errors


def test_defaults_go_through_the_check_and_derived_ones_see_the_row() -> None:
    row, errors = walk({"must": 2})
    assert errors == []
    assert row == {
        "size": 4,
        "lo": 1.0,
        "mid": 2.0,
        "hi": 5.0,
        "must": 2,
        "maybe": None,
        "handled": ABSENT,
        "evens": (),
    }
    assert complete(row)


def test_every_problem_is_recorded_by_key() -> None:
    row, errors = walk({"size": 11, "must": 3, "evens": [2, 3, 5], "sise": 1, "zzz": 0})
    assert errors == [
        ("t.sise", "unknown key; did you mean 'size'?"),
        (
            "t.zzz",
            "unknown key; expected one of: size, lo, mid, hi, must, maybe, handled, evens",
        ),
        ("t.size", "11 is out of range 1 .. 10"),
        ("t.must", "must be even"),
        ("t.evens[1]", "must be even"),
        ("t.evens[2]", "must be even"),
    ]
    assert row is not None and not complete(row)
    assert row["size"] is INVALID and row["evens"] is INVALID and row["lo"] == 1.0


def test_required_key_message() -> None:
    _, errors = walk({})
    assert errors == [("t.must", "required: an even number")]


def test_not_a_table() -> None:
    row, errors = walk([1])
    assert row is None and errors == [("t", "must be a table, not an array")]


def test_ordering_rules() -> None:
    _, errors = walk({"must": 2, "lo": 3, "hi": 2})
    assert errors == [("t.hi", "must be greater than t.lo (3 s); hi is the ceiling")]
    _, errors = walk({"must": 2, "lo": 1, "hi": 4, "mid": 4})
    assert errors == [("t.mid", "must lie between t.lo (1) and t.hi (4)")]
    _, errors = walk({"must": 2, "lo": 1, "hi": 4, "mid": 3.5})
    assert errors == []


def test_an_ordering_rule_with_an_invalid_bound_is_skipped() -> None:
    _, errors = walk({"must": 2, "lo": "x", "mid": 0.5})
    assert [k for k, _ in errors] == ["t.lo"]


def test_array_of_tables_reports_repeated_names() -> None:
    walker = Walker(Path("."))
    keys = (Key("name", lambda v, ctx: v), Key("n", integer(0, 9), 0))
    rows = walker.array_of_tables(
        [{"name": "x"}, {"name": "y"}, {"name": "x", "n": 10}, 5], "items", "things", keys, "item"
    )
    assert walker.errors == [
        ("items[2].n", "10 is out of range 0 .. 9"),
        ("items[2].name", "duplicate item name 'x' (also items[0])"),
        ("items[3]", "must be a table, not an integer"),
    ]
    assert rows is not None and [i for i, _ in rows] == [0, 1, 2]
    assert rows[2][1]["name"] is INVALID
    walker = Walker(Path("."))
    assert walker.array_of_tables([], "items", "things", keys, "item") is None
    assert walker.errors == [("items", "at least one [[items]] table is required (things)")]


# ---------------------------------------------------------------- the README documents every key


def _documented_keys() -> dict[str, set[str]]:
    """Words of the key column of README's configuration table, by section."""
    text = README.read_text()
    section = text[text.index("### Configuration") :]
    section = section[: section.index("\n\n", section.index("| --- |"))]
    out: dict[str, set[str]] = {}
    current = ""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or cells[0] == "section" or (set(cells[0]) <= {"-", " "} and cells[0]):
            continue
        current = cells[0] or current
        out.setdefault(current, set()).update(re.findall(r"[a-z_]+", cells[1]))
    return out


@pytest.mark.parametrize(
    ("section", "keys"),
    [
        ("`[farm]`", FARM),
        ("`[limits]`", limit_keys()),
        ("`[log]`", LOG),
        ("`[[services]]`", SERVICE + TLS),
        ("`[[nodes]]`", NODE),
    ],
)
def test_readme_documents_every_key(section: str, keys: tuple[Key, ...]) -> None:
    documented = _documented_keys()
    assert section in documented
    missing = {k.name for k in keys} - documented[section]
    assert not missing, f"README's {section} rows do not mention {sorted(missing)}"

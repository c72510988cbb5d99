"""The generic part of config validation: key specs and one walker over TOML tables.

A section of the farm file is described by a tuple of `Key` entries (name,
check, default, doc, ordering). `Walker.walk` validates one TOML table against
such a tuple and records every problem as a (key, message) pair instead of
stopping at the first; unknown keys get a did-you-mean. The checks here are
the reusable ones (integers, seconds, strings, booleans, files, arrays).

This module knows no section of the farm file and reads no file except the one
a `file_path` check proves exists; it never touches sockets or the clock.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeGuard

__all__ = [
    "ABSENT",
    "INVALID",
    "NONE",
    "REQUIRED",
    "Check",
    "Ctx",
    "Derived",
    "Invalid",
    "Key",
    "Mark",
    "Walker",
    "array_of",
    "boolean",
    "choice",
    "complete",
    "did_you_mean",
    "file_path",
    "integer",
    "seconds",
    "text",
    "type_name",
]


class Mark(enum.Enum):
    """Markers that are not values: in a row, or as `Key.default`."""

    INVALID = "invalid"
    """A row value whose problem is already recorded."""
    REQUIRED = "required"
    """`Key.default` of a key the table must set."""
    ABSENT = "absent"
    """`Key.default` (and row value) of an optional key the section handles itself."""


INVALID: Final = Mark.INVALID
REQUIRED: Final = Mark.REQUIRED
ABSENT: Final = Mark.ABSENT


class Invalid(Exception):
    """One problem with a value, recorded under the value's key by the walker."""


@dataclass(frozen=True, slots=True)
class Derived:
    """A default computed from the table and the keys validated before it (`ctx.row`).

    `compute` may raise Invalid (recorded under the key) and returns INVALID
    when a value it needs is itself invalid.
    """

    compute: Callable[[Ctx], Any]


NONE: Final = Derived(lambda ctx: None)
"""`Key.default` of an optional key whose absence is None."""


Check = Callable[[Any, "Ctx"], Any]
"""``(value, ctx) -> converted value``; raises Invalid, or records errors and returns INVALID."""


@dataclass(frozen=True, slots=True)
class Ctx:
    """What a check may look at besides its value: key, walker, table, the row so far."""

    key: str
    walker: Walker
    table: Mapping[str, Any]
    row: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a TOML table.

    `default` is written as it would be in the file and goes through `check`
    like a written value (so "auto" or [] are resolved the same way); it may
    also be REQUIRED (then `required` is the message), ABSENT or a Derived.
    `above` / `below` name keys of the same table this one's value must
    exceed / stay under (`why` is appended to the message); the ordering is
    checked once every key of the table has a value.
    """

    name: str
    check: Check
    default: Any = REQUIRED
    doc: str = ""
    required: str = "required"
    above: str | None = None
    below: str | None = None
    why: str = ""
    unit: str = ""


def type_name(value: object) -> str:
    """How the farm file's reader names the TOML type of `value`."""
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The closest of `choices` to `word`, if one is close enough to suggest."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


class Walker:
    """Walks a document, recording every problem instead of stopping at the first.

    `base_dir` is where relative file paths are looked up. `cookie_name` and
    `service_names` are facts of the farm that later sections are checked
    against (the extractor chain needs the cookie name; node maps need the
    declared services, None while they are unusable).
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.errors: list[tuple[str, str]] = []
        self.cookie_name = "lbhome"
        self.service_names: list[str] | None = None

    def error(self, key: str, message: str) -> None:
        self.errors.append((key, message))

    def table(self, value: Any, key: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.error(key, f"must be a table, not {type_name(value)}")
        return None

    def unknown_keys(self, tbl: Mapping[str, Any], allowed: Sequence[str], prefix: str) -> None:
        for k in tbl:
            if k not in allowed:
                close = did_you_mean(str(k), allowed)
                if close is not None:
                    message = f"unknown key; did you mean {close!r}?"
                else:
                    message = f"unknown key; expected one of: {', '.join(allowed)}"
                self.error(f"{prefix}{k}", message)

    def walk(self, raw: Any, keys: Sequence[Key], where: str) -> dict[str, Any] | None:
        """Validate the table `raw` (found at `where`) against `keys`.

        The row maps every key name to its value, INVALID when a problem was
        recorded, or ABSENT. None when `raw` is not a table at all.
        """
        tbl = self.table(raw, where or "<document>")
        if tbl is None:
            return None
        prefix = f"{where}." if where else ""
        self.unknown_keys(tbl, [k.name for k in keys], prefix)
        row: dict[str, Any] = {}
        for spec in keys:
            key = prefix + spec.name
            default = spec.default
            ctx = Ctx(key, self, tbl, row)
            try:
                if spec.name in tbl:
                    row[spec.name] = spec.check(tbl[spec.name], ctx)
                elif default is REQUIRED:
                    raise Invalid(spec.required)
                elif isinstance(default, Derived):
                    row[spec.name] = default.compute(ctx)
                elif default is ABSENT:
                    row[spec.name] = ABSENT
                else:
                    row[spec.name] = spec.check(default, ctx)
            except Invalid as exc:
                self.error(key, str(exc))
                row[spec.name] = INVALID
        self._check_order(row, keys, prefix)
        return row

    def _check_order(self, row: dict[str, Any], keys: Sequence[Key], prefix: str) -> None:
        """The `above` / `below` rules; a rule whose bounds are themselves invalid is skipped."""
        for spec in keys:
            if spec.above is None:
                continue
            value, lo = row[spec.name], row[spec.above]
            hi = row[spec.below] if spec.below is not None else None
            if INVALID in (value, lo, hi) or ABSENT in (value, lo, hi):
                continue
            why = f"; {spec.why}" if spec.why else ""
            if hi is None:
                if not value > lo:
                    self.error(
                        prefix + spec.name,
                        f"must be greater than {prefix}{spec.above} ({lo:g}{spec.unit}){why}",
                    )
                    row[spec.name] = INVALID
            elif lo < hi and not lo < value < hi:
                self.error(
                    prefix + spec.name,
                    f"must lie between {prefix}{spec.above} ({lo:g}{spec.unit}) and "
                    f"{prefix}{spec.below} ({hi:g}{spec.unit}){why}",
                )
                row[spec.name] = INVALID

    def array_of_tables(
        self, raw: Any, where: str, what: str, keys: Sequence[Key], kind: str
    ) -> list[tuple[int, dict[str, Any]]] | None:
        """Walk every table of the array `[[where]]`; a repeated `name` is an error.

        Returns (index, row) of every item that is a table (a repeated name is
        INVALID in its row); None when the array is empty or not an array.
        """
        if not isinstance(raw, list):
            self.error(where, f"must be an array of tables ([[{where}]]), not {type_name(raw)}")
            return None
        if not raw:
            self.error(where, f"at least one [[{where}]] table is required ({what})")
            return None
        rows: list[tuple[int, dict[str, Any]]] = []
        first: dict[str, int] = {}
        for i, item in enumerate(raw):
            row = self.walk(item, keys, f"{where}[{i}]")
            if row is None:
                continue
            name = row.get("name", INVALID)
            if isinstance(name, str):
                if name in first:
                    self.error(
                        f"{where}[{i}].name",
                        f"duplicate {kind} name {name!r} (also {where}[{first[name]}])",
                    )
                    row["name"] = INVALID
                else:
                    first[name] = i
            rows.append((i, row))
        return rows


def complete(row: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """Every value of the row is usable (no problem was recorded for it)."""
    return row is not None and all(v is not INVALID for v in row.values())


# --------------------------------------------------------------------------- checks


def integer(lo: int, hi: int) -> Check:
    """An integer (not a boolean) in lo .. hi."""

    def check(value: Any, ctx: Ctx) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"must be an integer, not {type_name(value)}")
        if not lo <= value <= hi:
            raise Invalid(f"{value} is out of range {lo} .. {hi}")
        return value

    return check


def seconds(hi: float, *, zero: bool = False) -> Check:
    """A finite number of seconds, > 0 (>= 0 with ``zero``: 0 turns a feature off) and
    <= hi, as a float."""

    def check(value: Any, ctx: Ctx) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"must be a number of seconds, not {type_name(value)}")
        number = float(value)
        above_low = number >= 0 if zero else number > 0
        if not math.isfinite(number) or not above_low or not number <= hi:
            low = ">= 0" if zero else "> 0"
            raise Invalid(f"{value} seconds is out of range: must be {low} and <= {hi:g}")
        return number

    return check


def text(pattern: re.Pattern[str], pattern_text: str) -> Check:
    """A string matching `pattern` (described to the operator as `pattern_text`)."""

    def check(value: Any, ctx: Ctx) -> str:
        if not isinstance(value, str):
            raise Invalid(f"must be a string, not {type_name(value)}")
        if not pattern.fullmatch(value):
            raise Invalid(f"{value!r} must match {pattern_text}")
        return value

    return check


def choice(choices: Sequence[str]) -> Check:
    """One of the strings `choices`."""

    quoted = ", ".join(f'"{c}"' for c in choices)

    def check(value: Any, ctx: Ctx) -> str:
        if not isinstance(value, str):
            # `access_log = false` reads well but is a boolean: show the strings, quoted
            raise Invalid(f"must be a string, one of: {quoted} (in quotes), not {type_name(value)}")
        if value not in choices:
            raise Invalid(f"{value!r} is not one of: {', '.join(choices)}")
        return value

    return check


def boolean(value: Any, ctx: Ctx) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, not {type_name(value)}")
    return value


def file_path(value: Any, ctx: Ctx) -> Path:
    """An existing file, relative to the config file's directory."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"must be a file path, not {type_name(value)}")
    path = ctx.walker.base_dir / value
    if not path.is_file():
        raise Invalid(f"no such file: {str(path)!r}")
    return path


def array_of(item: Check) -> Check:
    """An array whose items are checked one by one, keyed `key[i]`; a tuple."""

    def check(value: Any, ctx: Ctx) -> tuple[Any, ...] | Mark:
        if not isinstance(value, list):
            raise Invalid(f"must be an array, not {type_name(value)}")
        out: list[Any] = []
        for i, entry in enumerate(value):
            key = f"{ctx.key}[{i}]"
            try:
                out.append(item(entry, Ctx(key, ctx.walker, ctx.table, ctx.row)))
            except Invalid as exc:
                ctx.walker.error(key, str(exc))
        if len(out) != len(value) or any(v is INVALID for v in out):
            return INVALID
        return tuple(out)

    return check

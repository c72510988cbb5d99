"""Extractor registry: factories found through the entry-point group ``lb.extractors``.

``build_chain`` turns config specs into extractors and reports every bad spec at
once as one ConfigError. The entry-point scan is cached (``refresh()`` drops the
cache); ``build_chain`` also takes an explicit factory table. No I/O beyond
importing the installed entry points.
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from lb.errors import ConfigError, ExtractorError
from lb.extract.api import Extractor, ExtractorContext

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "ExtractorFactory",
    "FactoryInfo",
    "available",
    "build_chain",
    "load_errors",
    "refresh",
    "scan_entry_points",
]

ENTRY_POINT_GROUP = "lb.extractors"
BUILTIN_DISTRIBUTION = "lb"
"""The distribution whose entry points are the built-in kinds: they win a name clash."""

ExtractorFactory: TypeAlias = Callable[[Mapping[str, Any], ExtractorContext], Extractor]
"""``(options, ctx) -> Extractor``; raises ExtractorError("option 'x': message") lines."""

_OPTION_PROBLEM = re.compile(r"option '([^'\n]*)': (.+)")


@dataclass(frozen=True, slots=True)
class FactoryInfo:
    """One installed extractor kind."""

    name: str
    factory: ExtractorFactory
    distribution: str | None
    """The distribution that registered it (None if unknown)."""


def scan_entry_points(
    entry_points: Iterable[importlib.metadata.EntryPoint],
) -> tuple[dict[str, FactoryInfo], dict[str, str]]:
    """Load ``entry_points``: (name -> FactoryInfo, name -> load error).

    An entry point that fails to import or is not callable is skipped and its
    error recorded; when two distributions register one name, lb's own built-in
    wins over a plugin's (a plugin cannot replace ``client-ip`` or ``home-cookie``
    for every farm on the machine by being found first), else the first one found,
    and the clash is recorded.
    """
    factories: dict[str, FactoryInfo] = {}
    errors: dict[str, str] = {}
    # lb's built-ins first, then the plugins in the order found (a stable sort)
    ordered = sorted(entry_points, key=lambda ep: _dist_name(ep) != BUILTIN_DISTRIBUTION)
    for entry_point in ordered:
        dist = _dist_name(entry_point)
        name = entry_point.name
        if name in factories:
            first = factories[name]
            errors[name] = (
                f"{entry_point.value} from {dist or 'an unknown distribution'} ignored: "
                f"the name is taken by {first.distribution or 'an unknown distribution'}"
            )
            continue
        try:
            factory = entry_point.load()
        except Exception as exc:
            errors[name] = f"cannot load {entry_point.value}: {type(exc).__name__}: {exc}"
            continue
        if not callable(factory):
            errors[name] = f"{entry_point.value} is not callable"
            continue
        errors.pop(name, None)
        factories[name] = FactoryInfo(name, factory, dist)
    return factories, errors


def _dist_name(entry_point: importlib.metadata.EntryPoint) -> str | None:
    return entry_point.dist.name if entry_point.dist is not None else None


@functools.cache
def _installed() -> tuple[dict[str, FactoryInfo], dict[str, str]]:
    return scan_entry_points(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def available() -> dict[str, FactoryInfo]:
    """Installed extractor kinds by name (cached scan of the entry-point group)."""
    return dict(_installed()[0])


def load_errors() -> dict[str, str]:
    """Entry points of the group that could not be used, by name, with the reason."""
    return dict(_installed()[1])


def refresh() -> None:
    """Forget the cached entry-point scan; the next call scans again."""
    _installed.cache_clear()


def _is_extractor(obj: object) -> bool:
    return isinstance(getattr(obj, "name", None), str) and callable(getattr(obj, "extract", None))


def build_chain(
    specs: Sequence[tuple[str, Mapping[str, Any]]],
    ctx: ExtractorContext,
    key_prefix: str = "extractors",
    factories: Mapping[str, FactoryInfo] | None = None,
) -> list[Extractor]:
    """Build one extractor per ``(kind, options)`` spec, in order.

    Raises ConfigError listing every problem of every spec, keyed like
    ``f"{key_prefix}[{index}].{option}"`` (index from 0) or ``...[index].kind``.
    ``factories`` defaults to ``available()``.
    """
    table = available() if factories is None else factories
    broken = load_errors() if factories is None else {}
    errors: list[tuple[str, str]] = []
    chain: list[Extractor] = []
    for index, (kind, options) in enumerate(specs):
        key = f"{key_prefix}[{index}]"
        info = table.get(kind) if isinstance(kind, str) else None
        if info is None:
            if not isinstance(kind, str):
                message = "must be a string naming an extractor"
            elif kind in broken:
                message = f"extractor {kind!r} is installed but failed to load: {broken[kind]}"
            else:
                installed = ", ".join(sorted(table)) or "none"
                message = f"unknown extractor {kind!r}; installed: {installed}"
                close = difflib.get_close_matches(kind, list(table), n=1)
                if close:
                    message += f" (did you mean {close[0]!r}?)"
            errors.append((f"{key}.kind", message))
            continue
        if not isinstance(options, Mapping):
            errors.append((key, f"options must be a table, not {type(options).__name__}"))
            continue
        try:
            extractor = info.factory(options, ctx)
        except ExtractorError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            for line in lines or [f"bad options for extractor {kind!r}"]:
                match = _OPTION_PROBLEM.fullmatch(line)
                if match is None:
                    errors.append((key, line))
                else:
                    errors.append((f"{key}.{match.group(1)}", match.group(2)))
            continue
        except Exception as exc:
            errors.append(
                (key, f"extractor {kind!r} could not be built: {type(exc).__name__}: {exc}")
            )
            continue
        if not _is_extractor(extractor):
            errors.append(
                (key, f"factory of {kind!r} returned {type(extractor).__name__}, not an extractor")
            )
            continue
        chain.append(extractor)
    if errors:
        raise ConfigError(errors)
    return chain

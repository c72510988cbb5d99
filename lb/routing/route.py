"""``route()``: identifier + farm view -> the home of the connection.

A pure decision: the same (identifier, view, now, salt, client) and the same
directory and placement-memory contents always give the same ``Decision``. The
decision table is in docs/routing.md. ``retry`` places a new session again,
away from a home that could not be reached. This module must not do I/O, read
the clock or draw random numbers (``salt`` stands in for randomness).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from lb.routing.cookie import CookieKeyring
from lb.routing.directory import Directory, DirectoryKeys, source_key
from lb.routing.keyring_slot import KeyringSlot
from lb.routing.maglev import MaglevTable
from lb.routing.memory import DEFAULT_HOLD, PlacementMemory
from lb.routing.placement import (
    least_loaded_of_two,
    least_loaded_of_two_with_slack,
    source_salt,
)

if TYPE_CHECKING:
    from lb.extract.api import Identifier
    from lb.routing.view import FarmView

__all__ = ["MAX_CACHED_TABLES", "REASONS", "Decision", "Router"]

REASONS: tuple[str, ...] = (
    "home-cookie",
    "home-cookie-rehomed",
    "hash",
    "new-session",
    "directory",
    "directory-rehomed",
    "directory-miss",
    "retry",
)
MAX_CACHED_TABLES: Final = 4
# distinct decisions kept; past that, all are dropped
MAX_CACHED_DECISIONS: Final = 1024

# A client's address -> its source (parsing an address costs more than the placement)
_source_of = functools.lru_cache(maxsize=4096)(source_key)


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a connection goes and why."""

    home: str  # node name
    local: bool  # home == view.self_name
    new_session: bool  # the home must set a fresh home cookie in the first response
    reason: str  # one of REASONS (a metrics label)


class Router:
    """Routes identifiers to homes; caches Maglev tables by live weights.

    ``directory`` answers identifiers of placement ``"directory"``; the router only
    looks entries up (a hit refreshes the entry's LRU position, an expired entry is
    dropped), it never learns. Without a directory every such identifier misses.

    ``memory`` holds, per client source, the home its last placement chose
    (docs/routing.md, "New sessions of one client"); placements for a known
    ``client`` read and fill it. Without a memory, such placements still depend
    only on the client's source, the view and the hold window.
    """

    __slots__ = (
        "_cookies",
        "_decisions",
        "_directory",
        "_homed",
        "_keyring",
        "_keys",
        "_last_table",
        "_last_view",
        "_memory",
        "_placeable",
        "_placeable_set",
        "_placeable_view",
        "_tables",
        "fresh_source",
    )

    def __init__(
        self,
        keyring: CookieKeyring,
        directory: Directory | None = None,
        keys: DirectoryKeys | None = None,
        memory: PlacementMemory | None = None,
    ) -> None:
        self._keyring = keyring
        self._directory = directory
        self._keys = keys  # how the directory names an identifier (None: kind:value)
        self._memory = memory
        self._tables: OrderedDict[frozenset[tuple[str, int]], MaglevTable] = OrderedDict()
        self._last_view: FarmView | None = None
        self._last_table: MaglevTable | None = None
        self._placeable_view: FarmView | None = None
        self._placeable: list[str] = []
        self._placeable_set: frozenset[str] = frozenset()
        # decisions are immutable and few: one object per distinct answer is shared
        # (building a frozen dataclass costs more than the rest of a routing)
        self._decisions: dict[tuple[str, bool, bool, str], Decision] = {}
        # the "home-cookie" decision of each node a cookie names, by its name: one
        # look-up by a str (the keyring's own object, its hash kept) per request, not a
        # tuple key built and hashed
        self._homed: dict[str, Decision] = {}
        # home cookie values as the keyring verified them, remembered (a look-up costs
        # less than a call into the interpreted keyring, even a cached one)
        self._cookies = KeyringSlot(keyring)
        # the client source the last placement chose a home for afresh (None: the last
        # placement recalled a held home, or had no source); the I/O layer reads it after
        # a new session's decision, to make the node's workers agree (docs/routing.md)
        self.fresh_source: str | None = None

    @property
    def keyring(self) -> CookieKeyring:
        return self._keyring

    @property
    def directory(self) -> Directory | None:
        return self._directory

    @property
    def memory(self) -> PlacementMemory | None:
        return self._memory

    def route(
        self,
        identifier: Identifier | None,
        view: FarmView,
        now: float,
        salt: int,
        client: str | None = None,
    ) -> Decision:
        """The decision for one connection; see the decision table in docs/routing.md.

        ``client`` is the client's IP address (text): new sessions of one client
        source agree on their home. Without it, placement draws from ``salt``.
        """
        if identifier is not None:
            placement = identifier.placement
            if placement == "home-cookie":
                node = self._cookies.verify(identifier.value, now)
                if node is not None:
                    if node in view.live and node not in view.rehomed:
                        local = node == view.self_name
                        decision = self._homed.get(node)
                        if decision is None or decision.local != local:
                            if len(self._homed) >= MAX_CACHED_DECISIONS:
                                self._homed.clear()
                            decision = self._decision(node, local, False, "home-cookie")
                            self._homed[node] = decision
                        return decision
                    return self._place(view, now, salt, client, "home-cookie-rehomed")
            elif placement == "hash":
                home = self.table_for(view).lookup(f"{identifier.kind}:{identifier.value}")
                return self._decision(home, home == view.self_name, False, "hash")
            elif placement == "directory":
                return self._from_directory(identifier, view, now, salt, client)
        return self._place(view, now, salt, client, "new-session")

    def retry(
        self, failed: str, view: FarmView, now: float, salt: int, client: str | None = None
    ) -> Decision | None:
        """A new session whose home ``failed`` could not be reached, placed once more.

        The candidates are ``view.strictly_placeable()`` without ``failed`` (no
        fallback to draining nodes); None when there is none. Placed like a new
        session (reason ``retry``), and the client's source is then held on the
        new home, so its other new sessions follow it instead of failing too.
        """
        candidates = [n for n in view.strictly_placeable() if n != failed]
        if not candidates:
            return None
        if client is None:
            home = least_loaded_of_two(candidates, view.loads, salt)
        else:
            source = _source_of(client)
            home = self._by_source(source, view, now, candidates)
            if self._memory is not None:
                self._memory.remember(source, home, now)
        return self._decision(home, home == view.self_name, True, "retry")

    def hold_for_source(
        self, source: str, proposal: str, view: FarmView, now: float
    ) -> tuple[str, float]:
        """Where ``source``'s new sessions go for every worker of the node, and since when.

        Worker 0's answer to a sibling that placed ``source`` afresh on ``proposal``
        (docs/routing.md, "Several workers"): the home its memory holds for the
        source if that is placeable, else ``proposal`` if placeable, else the
        placement rule's home; then held from ``now``. Without a memory nothing is
        held: a placeable ``proposal`` is the answer.
        """
        placeable = self._placeable_in(view)
        memory = self._memory
        if memory is not None:
            held = memory.held(source, now)
            if held is not None and held[0] in placeable:
                return held
        home = proposal if proposal in placeable else self._by_source(source, view, now)
        if memory is not None:
            memory.remember(source, home, now)
        return home, now

    def table_for(self, view: FarmView) -> MaglevTable:
        """The Maglev table over ``view.weights()``, built once per distinct weight set.

        The last view object is remembered, so routing many connections with one
        view costs no work at all; a new view with the same live weights (a load
        change) reuses the cached table. At most MAX_CACHED_TABLES are kept.
        """
        if view is self._last_view and self._last_table is not None:
            return self._last_table
        weights = view.weights()
        key = frozenset(weights.items())
        table = self._tables.get(key)
        if table is None:
            table = MaglevTable(weights)
            self._tables[key] = table
            while len(self._tables) > MAX_CACHED_TABLES:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(key)
        self._last_view = view
        self._last_table = table
        return table

    @property
    def cached_tables(self) -> int:
        """How many Maglev tables are cached (for inspection and tests)."""
        return len(self._tables)

    def _from_directory(
        self,
        identifier: Identifier,
        view: FarmView,
        now: float,
        salt: int,
        client: str | None,
    ) -> Decision:
        directory = self._directory
        home = None
        if directory is not None:
            keys = self._keys
            key = (
                keys.key(identifier.kind, identifier.value)
                if keys is not None
                else f"{identifier.kind}:{identifier.value}"
            )
            home = directory.lookup(key, now)
        if home is None:
            return self._place(view, now, salt, client, "directory-miss")
        if home in view.live and home not in view.rehomed:
            return self._decision(home, home == view.self_name, False, "directory")
        return self._place(view, now, salt, client, "directory-rehomed")

    def _decision(self, home: str, local: bool, new_session: bool, reason: str) -> Decision:
        """The Decision with these fields, shared by the routings that answer it."""
        key = (home, local, new_session, reason)
        decision = self._decisions.get(key)
        if decision is None:
            if len(self._decisions) >= MAX_CACHED_DECISIONS:
                self._decisions.clear()
            decision = self._decisions[key] = Decision(home, local, new_session, reason)
        return decision

    def _source_salt(self, source: str, now: float) -> int:
        memory = self._memory
        return source_salt(source, now, memory.hold if memory is not None else DEFAULT_HOLD)

    def _placeable_in(self, view: FarmView) -> frozenset[str]:
        """``view.placeable()``, sorted once per view (not per connection) into
        ``_placeable``; returned as a set."""
        if view is not self._placeable_view:
            self._placeable = view.placeable()
            self._placeable_set = frozenset(self._placeable)
            self._placeable_view = view
        return self._placeable_set

    def _by_source(
        self, source: str, view: FarmView, now: float, candidates: list[str] | None = None
    ) -> str:
        """The placement rule's home for a client source (docs/routing.md, step 2), among
        ``candidates`` (default: the view's placeable nodes)."""
        if candidates is None:
            self._placeable_in(view)
            candidates = self._placeable
        salt = self._source_salt(source, now)
        return least_loaded_of_two_with_slack(candidates, view.loads, salt)

    def _place(
        self, view: FarmView, now: float, salt: int, client: str | None, reason: str
    ) -> Decision:
        placeable = self._placeable_in(view)
        if client is None:
            self.fresh_source = None
            home = least_loaded_of_two(self._placeable, view.loads, salt)
            return self._decision(home, home == view.self_name, True, reason)
        source = _source_of(client)
        memory = self._memory
        if memory is not None:
            held = memory.recall(source, now)
            if held is not None and held in placeable:
                self.fresh_source = None
                return self._decision(held, held == view.self_name, True, reason)
        home = self._by_source(source, view, now)
        if memory is not None:
            memory.remember(source, home, now)
        self.fresh_source = source
        return self._decision(home, home == view.self_name, True, reason)

"""Farm membership and failure detection: one node's state machine for its peers.

Turns "heard from peer", "link lost", gossip (NODE_STATE) and second-opinion
probes (PROBE_REQUEST / PROBE_RESULT) into member states (ALIVE, SUSPECT, DEAD,
DRAINING, LEFT; UNKNOWN until first heard) and into output actions the I/O layer
carries out. The behaviour is specified in docs/membership.md.

A node that runs several worker processes runs one machine per worker, but the
node has one own state: its speaker (worker 0) declares and refutes, the others
adopt what it declared (``adopt_own_state``) and never contradict it.

Pure: no asyncio, no sockets, no clock (every input takes ``now``), no hidden
randomness (nonces and helper choice come from the ``random.Random`` passed in).
It never does I/O: inputs queue actions, ``take_actions()`` hands them over.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from lb.wire.membership import MAX_INCARNATION, MemberState, NodeState

__all__ = [
    "MAX_AHEAD",
    "Action",
    "Broadcast",
    "MemberState",
    "Membership",
    "NodeState",
    "SendProbeRequest",
    "SendProbeResult",
    "SendTo",
    "StateChanged",
    "Timing",
    "diff_members",
]

ALIVE = MemberState.ALIVE
SUSPECT = MemberState.SUSPECT
DEAD = MemberState.DEAD
DRAINING = MemberState.DRAINING
LEFT = MemberState.LEFT
UNKNOWN = MemberState.UNKNOWN

# A node's own declarations, ordered for merging at equal incarnation.
_DECLARATION_RANK: dict[MemberState, int] = {ALIVE: 0, DRAINING: 1, LEFT: 2}
# Declarations believed only from the node itself (ALIVE may be relayed: refutations).
_OWN_WORD = frozenset((DRAINING, LEFT))

_NEVER = float("-inf")

MAX_AHEAD = 600.0
"""Seconds an incarnation may run ahead of the receiver's wall clock.

A node's incarnation starts at its start wall time (Unix seconds) and rises by one
per refutation or drain, so a real one is never far ahead of any clock of the
farm. A statement about another node (relayed) with an incarnation beyond
``wall + MAX_AHEAD`` is refused, and so is gossip about this node itself; a node's
word about itself gets twice that, because it may have refuted a record at the
bound. The farm's clocks must agree within ``MAX_AHEAD`` (NTP does far better)."""


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """Timers of failure detection, in seconds (defaults for a LAN; see docs/membership.md).

    ``ping_interval`` is the heartbeat period of the I/O layer (one PING per link);
    a peer not heard for ``suspect_after`` is SUSPECT and probed through up to
    ``helpers`` other nodes every ``probe_interval``; with no direct hearing and no
    helper vouching for ``dead_after`` it is DEAD. DEAD and UNKNOWN members are
    re-checked through helpers every ``recheck_interval``. When this node's
    application has been down for ``app_down_rehome_after``, it gives its
    sessions up (it says LEFT until the application is up again). A node that
    hears none of its peers (in a farm of three or more) keeps the peers it lost,
    or never heard since it started, as homes of their sessions for
    ``isolated_rehome_after`` (it cannot tell their death from its own isolation).
    A peer declared DEAD keeps its sessions for ``dead_rehome_after`` from its death
    (0, the default: not at all), so a node restarted without leaving finds them.
    """

    ping_interval: float = 0.5
    suspect_after: float = 1.0
    dead_after: float = 2.5
    probe_interval: float = 0.5
    recheck_interval: float = 2.0
    helpers: int = 2
    app_down_rehome_after: float = 30.0
    isolated_rehome_after: float = 30.0
    dead_rehome_after: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "ping_interval",
            "suspect_after",
            "dead_after",
            "probe_interval",
            "recheck_interval",
            "app_down_rehome_after",
            "isolated_rehome_after",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value < float("inf")
            ):
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        rehome = self.dead_rehome_after
        if (
            isinstance(rehome, bool)
            or not isinstance(rehome, int | float)
            or not 0 <= rehome < float("inf")
        ):
            raise ValueError(f"dead_rehome_after must be a number of seconds >= 0, got {rehome!r}")
        if not self.suspect_after > self.ping_interval:
            raise ValueError(
                f"suspect_after ({self.suspect_after:g}) must exceed ping_interval "
                f"({self.ping_interval:g}): one late answer must not raise suspicion"
            )
        if not self.dead_after > self.suspect_after:
            raise ValueError(
                f"dead_after ({self.dead_after:g}) must exceed suspect_after "
                f"({self.suspect_after:g}): suspicion needs time for a second opinion"
            )
        if isinstance(self.helpers, bool) or not isinstance(self.helpers, int) or self.helpers < 0:
            raise ValueError(f"helpers must be an int >= 0, got {self.helpers!r}")


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendProbeRequest:
    """Send PROBE_REQUEST(target, nonce) to node ``via``."""

    via: str
    target: str
    nonce: int


@dataclass(frozen=True, slots=True)
class SendProbeResult:
    """Send PROBE_RESULT(target, nonce, alive) to node ``to``."""

    to: str
    target: str
    nonce: int
    alive: bool


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send NODE_STATE([state]) to every peer with a link up."""

    state: NodeState


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send NODE_STATE(states) to ``peer`` (the full list on link up, or one entry)."""

    peer: str
    states: tuple[NodeState, ...]


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The state of ``node`` as this node sees it changed (log it, rebuild the farm view).

    ``old`` is None for a member just added; ``new`` is LEFT for one removed.
    """

    node: str
    old: MemberState | None
    new: MemberState


Action = SendProbeRequest | SendProbeResult | Broadcast | SendTo | StateChanged


def diff_members(current: set[str], resolved: set[str]) -> tuple[set[str], set[str]]:
    """(added, removed) turning the member set ``current`` into ``resolved``.

    For a periodic DNS re-resolution: call ``add_node`` for each added name and
    ``remove_node`` for each removed one.
    """
    return set(resolved) - set(current), set(current) - set(resolved)


# --- the machine -----------------------------------------------------------------------------


class _Member:
    """What this node knows about one peer."""

    __slots__ = (
        "dead_inc",
        "dead_since",
        "heard",
        "held_from",
        "inc",
        "mode",
        "name",
        "next_probe",
        "relayed_inc",
        "status",
        "suspect_since",
        "vouched",
        "voucher",
    )

    def __init__(self, name: str, now: float, recheck: float, held_from: float | None) -> None:
        self.name = name
        self.inc = 0  # highest incarnation known
        self.mode = ALIVE  # the node's own declaration at ``inc``: ALIVE, DRAINING or LEFT
        self.status = UNKNOWN  # failure detection: UNKNOWN, ALIVE, SUSPECT or DEAD
        self.heard = _NEVER  # last time heard directly
        self.vouched = _NEVER  # last time a helper vouched (or a refutation was relayed)
        self.voucher: str | None = None  # the helper that vouched last
        self.suspect_since = _NEVER
        self.next_probe = now + recheck  # next probe round (SUSPECT) or re-check (DEAD, UNKNOWN)
        self.dead_inc = -1  # incarnation at which the member was declared DEAD
        self.dead_since = _NEVER  # when it was last declared DEAD
        self.relayed_inc = -1  # highest incarnation of a DEAD claim relayed to the member
        # since when its sessions wait for it while this node hears no peer (None: they
        # do not): a peer of this node's start, or one declared DEAD while isolated
        self.held_from = held_from

    def public(self) -> MemberState:
        if self.mode is LEFT:
            return LEFT
        if self.status is ALIVE:
            return self.mode
        return self.status


class _Probe:
    __slots__ = ("helper", "sent", "target")

    def __init__(self, helper: str, target: str, sent: float) -> None:
        self.helper = helper
        self.target = target
        self.sent = sent


class Membership:
    """Membership and failure detection of the farm as node ``self_name`` sees it.

    Feed it with ``heard``, ``link_up``, ``link_lost``, ``on_node_state``,
    ``on_probe_request``, ``on_probe_result`` and ``tick`` (every ~100 ms); send
    what ``take_actions()`` returns. Peers start UNKNOWN (not live) until heard.
    Events from or about names that are not members are ignored. Every input
    must come with a ``now`` that does not go backward.

    Gossip is trusted only so far: a node's own state (DRAINING, LEFT) is taken only
    from that node, and an incarnation more than ``max_ahead`` seconds ahead of the
    wall clock passed to ``on_node_state`` is refused (``refused`` counts both).

    ``speaker=False`` makes the machine of a sibling worker: it neither declares
    nor refutes this node's own state (its speaker, worker 0, hears the same gossip
    on the worker bus and does), it takes that state from ``adopt_own_state``, and
    leaves itself out of ``full_state`` until it has.
    """

    __slots__ = (
        "_actions",
        "_app_down_since",
        "_app_gone",
        "_drain",
        "_inc",
        "_left",
        "_max_ahead",
        "_members",
        "_mode",
        "_name",
        "_pending",
        "_refused",
        "_rng",
        "_speaker",
        "_spoken",
        "_timing",
    )

    def __init__(
        self,
        self_name: str,
        peers: Iterable[str],
        now: float,
        *,
        timing: Timing | None = None,
        rng: random.Random | None = None,
        incarnation: int = 0,
        max_ahead: float = MAX_AHEAD,
        speaker: bool = True,
    ) -> None:
        if isinstance(incarnation, bool) or not 0 <= incarnation <= MAX_INCARNATION:
            raise ValueError(f"incarnation must be 0..2**64-1, got {incarnation!r}")
        if (
            isinstance(max_ahead, bool)
            or not isinstance(max_ahead, int | float)
            or not 0 < max_ahead < float("inf")
        ):
            raise ValueError(f"max_ahead must be a number of seconds > 0, got {max_ahead!r}")
        self._name = self_name
        self._max_ahead = float(max_ahead)
        self._refused = 0
        self._timing = timing if timing is not None else Timing()
        self._rng = rng if rng is not None else random.Random()
        self._inc = incarnation
        self._speaker = speaker  # declares and refutes this node's own state
        self._spoken = speaker  # this node's own state is known here (a sibling: adopted)
        self._mode = ALIVE  # the speaker: derived from the four below by _own_mode()
        self._drain = False  # the operator drains this node
        self._left = False  # this node left the farm (a clean shutdown)
        self._app_down_since: float | None = None  # when the local application went down
        self._app_gone = False  # ... and stayed down for app_down_rehome_after: LEFT
        self._actions: list[Action] = []
        self._pending: dict[int, _Probe] = {}
        recheck = self._timing.recheck_interval
        self._members: dict[str, _Member] = {
            name: _Member(name, now, recheck, now)
            for name in sorted(set(peers))
            if name != self_name
        }

    # -- properties ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def incarnation(self) -> int:
        """This node's own incarnation (a sibling worker: the one it adopted)."""
        return self._inc

    @property
    def speaker(self) -> bool:
        """Whether this machine declares and refutes this node's own state."""
        return self._speaker

    def own_state(self) -> NodeState:
        """This node's own declaration and incarnation, as its speaker tells the siblings."""
        return NodeState(self._name, self._mode, self._inc)

    @property
    def timing(self) -> Timing:
        return self._timing

    @property
    def app_down_since(self) -> float | None:
        """When this node's application went down (None while it is up)."""
        return self._app_down_since

    @property
    def refused(self) -> int:
        """NODE_STATE entries not believed: a node's DRAINING or LEFT from another
        node, or an incarnation too far ahead of the wall clock."""
        return self._refused

    @property
    def members(self) -> frozenset[str]:
        """The peers (this node excluded)."""
        return frozenset(self._members)

    def take_actions(self) -> list[Action]:
        """The actions queued since the last call, in order; the queue is emptied."""
        out = self._actions
        self._actions = []
        return out

    # -- queries ---------------------------------------------------------------------------
    def state(self, node: str) -> MemberState | None:
        """State of ``node`` after the last input; None for a name that is not a member."""
        if node == self._name:
            return self._mode
        member = self._members.get(node)
        return None if member is None else member.public()

    def full_state(self) -> list[NodeState]:
        """Everything this node knows, as NODE_STATE entries: itself first, no UNKNOWN peers.

        A sibling worker leaves itself out until it adopted its speaker's state."""
        out = [self.own_state()] if self._spoken else []
        for member in self._members.values():
            state = member.public()
            if state is not UNKNOWN:
                out.append(NodeState(member.name, state, member.inc))
        return out

    def live_nodes(self, now: float) -> frozenset[str]:
        """Nodes that keep their sessions: this node, and ALIVE, SUSPECT and DRAINING peers.

        A SUSPECT peer stays live (its sessions are not re-homed) until it is
        declared DEAD. Timeouts due at ``now`` are applied as ``tick(now)`` would.
        """
        live = {self._name}
        for member in self._members.values():
            if member.mode is LEFT:
                continue
            if self._due_status(member, now) in (ALIVE, SUSPECT):
                live.add(member.name)
        return frozenset(live)

    def placeable_nodes(self, now: float) -> frozenset[str]:
        """Nodes that take new sessions: ALIVE peers, and this node unless it drains or left
        (a sibling worker: as its speaker declared)."""
        out = {self._name} if self._mode is ALIVE else set()
        for member in self._members.values():
            if member.mode is ALIVE and self._due_status(member, now) is ALIVE:
                out.add(member.name)
        return frozenset(out)

    def rehomed_nodes(self, now: float) -> frozenset[str]:
        """Live nodes whose sessions are re-homed, for ``FarmView(rehomed=...)``.

        This node, once its application has been down for ``app_down_rehome_after``
        at ``now`` (as ``tick(now)`` would declare it); nobody otherwise. Peers
        whose application stays down say LEFT and are not live at all.
        """
        since = self._app_down_since
        if since is not None and (
            self._app_gone or now >= since + self._timing.app_down_rehome_after
        ):
            return frozenset((self._name,))
        return frozenset()

    def view_sets(self, now: float) -> tuple[frozenset[str], frozenset[str]]:
        """(live, draining) for ``FarmView(live=..., draining=...)``.

        ``draining`` is every live node that takes no new sessions: DRAINING
        nodes and SUSPECT ones, so ``live - draining == placeable_nodes(now)``.
        ``live`` also holds ``held_nodes(now)`` and ``dead_held_nodes(now)``: their
        sessions wait for them.
        """
        live = self.live_nodes(now) | self.held_nodes(now) | self.dead_held_nodes(now)
        return live, live - self.placeable_nodes(now)

    def isolated(self, now: float) -> bool:
        """Whether this node hears none of its peers, in a farm of three or more nodes
        that have not left (with one peer, its death and a cut look the same to both)."""
        peers = [m for m in self._members.values() if m.mode is not LEFT]
        return len(peers) >= 2 and all(self._due_status(m, now) is not ALIVE for m in peers)

    def held_nodes(self, now: float) -> frozenset[str]:
        """Peers that are not live but keep their sessions: this node hears no peer.

        An isolated node (``isolated(now)``) cannot tell its peers' death from its
        own isolation, and a node that started cut off never heard them at all: the
        sessions of a peer that was a member when this node started (UNKNOWN since),
        or that it declared DEAD while isolated, stay that peer's (not placeable:
        the entry fails their requests) instead of being re-homed here,
        for ``isolated_rehome_after``. A peer a third node declared dead, one that
        left, or one added later is not held; hearing any peer ends every hold.
        """
        if not self.isolated(now):
            return frozenset()
        limit = self._timing.isolated_rehome_after
        out = set()
        for member in self._members.values():
            if member.mode is LEFT:
                continue
            status = self._due_status(member, now)
            if status is DEAD and member.status is SUSPECT:
                # its death is due, not yet ticked: held from when tick would declare it
                since: float | None = self._death_due_at(member)
            elif status in (UNKNOWN, DEAD):
                since = member.held_from
            else:
                continue
            if since is not None and now < since + limit:
                out.add(member.name)
        return frozenset(out)

    def dead_held_nodes(self, now: float) -> frozenset[str]:
        """Peers declared DEAD (not LEFT) whose sessions still wait for them: for
        ``dead_rehome_after`` from their death (0: none). A node restarted without
        leaving (lb.node stops without LEFT when that limit is above 0) finds its
        sessions when it is back; until then their requests wait for its link, and
        new sessions go elsewhere. A death due at ``now`` counts from when ``tick``
        would declare it. Whoever declared it, this node or another."""
        limit = self._timing.dead_rehome_after
        if limit <= 0:
            return frozenset()
        out = set()
        for member in self._members.values():
            if member.mode is LEFT or self._due_status(member, now) is not DEAD:
                continue
            since = member.dead_since if member.status is DEAD else self._death_due_at(member)
            if now < since + limit:
                out.add(member.name)
        return frozenset(out)

    # -- inputs: links and heartbeats ------------------------------------------------------
    def heard(self, peer: str, now: float) -> None:
        """Any frame (PING, PONG, gossip, probe) arrived from ``peer`` at ``now``."""
        member = self._members.get(peer)
        if member is None:
            return
        if now > member.heard:
            member.heard = now
        if member.status is ALIVE:
            return
        before, inc = member.public(), member.inc
        was_dead = member.status is DEAD
        # the hold ends with this: the peers this node declared dead while it heard
        # nobody are checked again (a node of its start it never heard stays UNKNOWN)
        held = [
            name
            for name in sorted(self.held_nodes(now))
            if name != peer and self._members[name].status is not UNKNOWN
        ]
        member.status = ALIVE
        member.voucher = None
        self._drop_probes(peer)
        if was_dead and member.dead_inc >= member.inc and member.mode is not LEFT:
            # Other nodes may still hold it DEAD: make it refute with a new incarnation.
            self._actions.append(SendTo(peer, (NodeState(peer, DEAD, member.dead_inc),)))
        self._after(member, before, inc)
        for name in held:
            self._recheck_held(self._members[name], now)

    def link_up(self, peer: str, now: float) -> None:
        """A link to or from ``peer`` was authenticated: send it the full state, count as heard.

        With ``dead_rehome_after``, a peer DEAD here past it is left out: a node that
        starts (or links anew) would hold its sessions for a whole ``dead_rehome_after``
        from then, failing requests the rest of the farm re-homed long ago; it stays
        UNKNOWN there, not live either. Within the hold it is handed on, so a node
        restarted while a peer restarts holds that peer's sessions too."""
        if peer not in self._members:
            return
        states = self.full_state()
        limit = self._timing.dead_rehome_after
        if limit > 0:
            over = {
                m.name
                for m in self._members.values()
                if m.public() is DEAD and now >= m.dead_since + limit
            }
            states = [e for e in states if e.node not in over]
        self._actions.append(SendTo(peer, tuple(states)))
        self.heard(peer, now)

    def link_lost(self, peer: str, now: float) -> None:
        """A link to ``peer`` closed: suspect it and ask for a second opinion (not DEAD yet)."""
        member = self._members.get(peer)
        if member is None or member.mode is LEFT or member.status is not ALIVE:
            return
        self._suspect(member, now)

    def tick(self, now: float) -> None:
        """Run the timers: suspicion, death, probe rounds, re-checks; expire old probes."""
        t = self._timing
        for member in self._members.values():
            if member.mode is LEFT:
                continue
            status = member.status
            if status is ALIVE:
                if now - member.heard >= t.suspect_after:
                    self._suspect(member, now)
            elif status is SUSPECT:
                if self._dead_due(member, now):
                    before, inc = member.public(), member.inc
                    member.status = DEAD
                    member.dead_since = now
                    member.held_from = now if self.isolated(now) else None
                    member.dead_inc = member.inc
                    member.next_probe = now + t.recheck_interval
                    self._drop_probes(member.name)
                    self._after(member, before, inc)
                elif now >= member.next_probe:
                    self._probe_round(member, now, t.probe_interval)
            elif now >= member.next_probe:  # DEAD or UNKNOWN: re-check through helpers
                self._probe_round(member, now, t.recheck_interval)
        if self._pending:
            limit = now - t.dead_after
            for nonce in [n for n, p in self._pending.items() if p.sent < limit]:
                del self._pending[nonce]
        since = self._app_down_since
        if since is not None and not self._app_gone and now >= since + t.app_down_rehome_after:
            self._app_gone = True
            self._update_mode()

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick` has something to do (None: nothing pending).

        Inputs (`heard`, gossip, probes) can only move deadlines, so the I/O layer
        asks again after feeding any of them.
        """
        t = self._timing
        due: list[float] = []
        for member in self._members.values():
            if member.mode is LEFT:
                continue
            status = member.status
            if status is ALIVE:
                due.append(member.heard + t.suspect_after)
            elif status is SUSPECT:
                due.append(
                    max(
                        self._evidence(member) + t.dead_after,
                        member.suspect_since + t.probe_interval,
                    )
                )
                due.append(member.next_probe)
            else:
                due.append(member.next_probe)
        due.extend(p.sent + t.dead_after for p in self._pending.values())
        if self._app_down_since is not None and not self._app_gone:
            due.append(self._app_down_since + t.app_down_rehome_after)
        return min(due) if due else None

    # -- inputs: gossip and probes ---------------------------------------------------------
    def on_node_state(self, sender: str, entry: NodeState, now: float, *, wall: float) -> None:
        """One NODE_STATE entry from ``sender`` (call once per entry of a frame).

        ``wall`` is the wall clock (Unix seconds) at ``now``: an entry whose
        incarnation is more than ``max_ahead`` ahead of it (twice that for the
        sender's word about itself) is refused, and so is DRAINING or LEFT about a
        node other than the sender. A refused entry still counts as hearing the sender.
        """
        if sender not in self._members:
            return
        node, state, inc = entry.node, entry.state, entry.incarnation
        direct = node == sender
        ahead = 2 * self._max_ahead if direct else self._max_ahead
        if not inc <= wall + ahead:
            self._refused += 1  # a NaN wall refuses everything rather than nothing
        elif node == self._name:
            self._about_self(state, inc)  # never believed, only refuted
        elif state in _OWN_WORD and not direct:
            self._refused += 1
        else:
            member = self._members.get(node)
            if member is not None:
                if state in _DECLARATION_RANK:
                    self._declaration(member, state, inc, now, direct=direct)
                elif state is DEAD and not direct:
                    self._dead_claim(member, inc, now)
                # SUSPECT from a third party is its own opinion: only the target acts on it.
        self.heard(sender, now)

    def on_probe_request(self, sender: str, target: str, nonce: int, now: float) -> None:
        """``sender`` asks whether this node hears ``target``; answers PROBE_RESULT at once.

        Alive means heard directly within ``suspect_after`` (a vouch from a third
        node does not count, so vouches never chain), or ``target`` is this node.
        """
        if sender not in self._members:
            return
        self.heard(sender, now)
        if target == self._name:
            alive = True
        else:
            member = self._members.get(target)
            alive = (
                member is not None
                and member.mode is not LEFT
                and now - member.heard < self._timing.suspect_after
            )
        self._actions.append(SendProbeResult(sender, target, nonce, alive))

    def on_probe_result(
        self, sender: str, target: str, nonce: int, alive: bool, now: float
    ) -> None:
        """An answer to one of this node's probe requests; others are ignored."""
        if sender not in self._members:
            return
        self.heard(sender, now)
        probe = self._pending.get(nonce)
        if probe is None or probe.helper != sender or probe.target != target:
            return
        del self._pending[nonce]
        member = self._members.get(target)
        if member is None or not alive:
            return
        member.voucher = sender
        before, inc = member.public(), member.inc
        self._vouch(member, now)
        self._after(member, before, inc)

    # -- inputs: own state and membership changes ------------------------------------------
    def start_draining(self, now: float) -> None:
        """This node takes no new sessions from now on and keeps serving its own."""
        del now
        self._drain = True
        self._update_mode()

    def stop_draining(self, now: float) -> None:
        """This node takes new sessions again (unless its application is down)."""
        del now
        self._drain = False
        self._update_mode()

    def leave(self, now: float) -> None:
        """This node leaves the farm (a clean shutdown): peers mark it LEFT, not DEAD."""
        del now
        self._left = True
        self._update_mode()

    def app_down(self, now: float) -> None:
        """This node's application went down: no new sessions from now on (DRAINING).

        If it is still down ``app_down_rehome_after`` later (``tick``), the node
        gives its sessions up: it says LEFT, so every entry re-homes them, and
        ``rehomed_nodes`` names it for its own view. Repeated calls keep the
        first time.
        """
        if self._app_down_since is None:
            self._app_down_since = now
            self._update_mode()

    def app_up(self, now: float) -> None:
        """This node's application is up again: it takes new sessions (ALIVE) unless it
        drains or left; a node that gave its sessions up says ALIVE at a new incarnation."""
        del now
        if self._app_down_since is not None:
            self._app_down_since = None
            self._app_gone = False
            self._update_mode()

    def adopt_own_state(self, entry: NodeState) -> None:
        """A sibling worker: ``entry`` is this node's state as its speaker declared it.

        Taken as it is, even at a lower incarnation (a restarted speaker is the
        node's voice from then on); a new declaration is reported (StateChanged)
        but not broadcast, the speaker told the farm. The speaker itself, and an
        entry about another node or not a declaration, change nothing.
        """
        if self._speaker or entry.node != self._name or entry.state not in _DECLARATION_RANK:
            return
        old = self._mode
        self._mode = entry.state
        self._inc = entry.incarnation
        self._spoken = True
        if entry.state is not old:
            self._actions.append(StateChanged(self._name, old, entry.state))

    def add_node(self, name: str, now: float) -> None:
        """A new member (config reload, DNS): UNKNOWN, not live until heard."""
        if name == self._name or name in self._members:
            return
        self._members[name] = _Member(name, now, self._timing.recheck_interval, None)
        self._actions.append(StateChanged(name, None, UNKNOWN))

    def remove_node(self, name: str, now: float) -> None:
        """A member left the configuration: forget it (reported as LEFT)."""
        del now
        member = self._members.pop(name, None)
        if member is None:
            return
        self._drop_probes(name)
        for nonce in [n for n, p in self._pending.items() if p.helper == name]:
            del self._pending[nonce]
        old = member.public()
        if old is not LEFT:
            self._actions.append(StateChanged(name, old, LEFT))

    # -- internals -------------------------------------------------------------------------
    def _evidence(self, member: _Member) -> float:
        """Latest time the member is known to have been up (direct or through a vouch)."""
        return max(member.heard, member.vouched - self._timing.suspect_after)

    def _death_due_at(self, member: _Member) -> float:
        """When ``tick`` declares a SUSPECT member DEAD, evidence staying as it is."""
        t = self._timing
        return max(self._evidence(member) + t.dead_after, member.suspect_since + t.probe_interval)

    def _dead_due(self, member: _Member, now: float) -> bool:
        t = self._timing
        return (
            now - self._evidence(member) >= t.dead_after
            and now - member.suspect_since >= t.probe_interval
        )

    def _due_status(self, member: _Member, now: float) -> MemberState:
        """The failure-detection status ``tick(now)`` would leave (without side effects)."""
        status = member.status
        if status is ALIVE and now - member.heard >= self._timing.suspect_after:
            return SUSPECT
        if status is SUSPECT and self._dead_due(member, now):
            return DEAD
        return status

    def _after(self, member: _Member, before: MemberState, before_inc: int) -> None:
        """Report a change of ``member``: StateChanged, and gossip it when others should know."""
        now_state = member.public()
        changed = now_state is not before
        if changed:
            self._actions.append(StateChanged(member.name, before, now_state))
        if now_state is UNKNOWN:
            return
        # An accusation (SUSPECT/DEAD) is gossiped when it is new; a node's own
        # declaration is relayed also when only its incarnation rose.
        if changed or (member.inc != before_inc and now_state in _DECLARATION_RANK):
            self._actions.append(Broadcast(NodeState(member.name, now_state, member.inc)))

    def _suspect(self, member: _Member, now: float) -> None:
        before, inc = member.public(), member.inc
        member.status = SUSPECT
        member.suspect_since = now
        self._after(member, before, inc)
        self._probe_round(member, now, self._timing.probe_interval)

    def _recheck_held(self, member: _Member, now: float) -> None:
        """This node hears a peer again after it heard nobody: a peer it declared dead
        meanwhile and held for its sessions stays live (SUSPECT, probed at once through
        the peers heard now) until they vouch for it or it is declared dead, instead of
        being re-homed at once (a healed cut brings its links back a moment apart)."""
        before, inc = member.public(), member.inc
        member.status = SUSPECT
        member.suspect_since = now
        self._after(member, before, inc)
        self._probe_round(member, now, self._timing.probe_interval)

    def _vouch(self, member: _Member, now: float) -> None:
        """Evidence from another node that ``member`` is up (the caller reports the change)."""
        if now > member.vouched:
            member.vouched = now
        if member.mode is LEFT or member.status in (ALIVE, SUSPECT):
            return
        # DEAD or UNKNOWN: live again, but SUSPECT until heard directly.
        member.status = SUSPECT
        member.suspect_since = now
        member.next_probe = now + self._timing.probe_interval

    def _probe_round(self, member: _Member, now: float, interval: float) -> None:
        """Ask up to ``helpers`` nodes heard lately whether they hear ``member``."""
        member.next_probe = now + interval
        limit = self._timing.suspect_after
        candidates = [
            m.name
            for m in self._members.values()
            if m is not member and m.mode is not LEFT and now - m.heard < limit
        ]
        k = min(self._timing.helpers, len(candidates))
        if k == 0:
            return
        chosen: list[str] = []
        voucher = member.voucher
        if voucher is not None and voucher in candidates:  # who vouched last is asked first
            chosen.append(voucher)
            candidates.remove(voucher)
        chosen += self._rng.sample(candidates, k - len(chosen))
        for helper in chosen:
            nonce = self._rng.getrandbits(64)
            while nonce in self._pending:
                nonce = self._rng.getrandbits(64)
            self._pending[nonce] = _Probe(helper, member.name, now)
            self._actions.append(SendProbeRequest(helper, member.name, nonce))

    def _drop_probes(self, target: str) -> None:
        if self._pending:
            for nonce in [n for n, p in self._pending.items() if p.target == target]:
                del self._pending[nonce]

    def _declaration(
        self, member: _Member, state: MemberState, inc: int, now: float, *, direct: bool
    ) -> None:
        """A node's own state (ALIVE, DRAINING, LEFT), from itself or relayed."""
        newer = inc > member.inc
        if not (
            newer
            or (inc == member.inc and _DECLARATION_RANK[state] > _DECLARATION_RANK[member.mode])
        ):
            return
        before, before_inc = member.public(), member.inc
        member.inc = inc
        member.mode = state
        if state is LEFT:
            self._drop_probes(member.name)
        elif newer and not direct and member.status in (SUSPECT, DEAD):
            # A refutation relayed by a third node: the member was up when it made it.
            self._vouch(member, now)
        self._after(member, before, before_inc)

    def _dead_claim(self, member: _Member, inc: int, now: float) -> None:
        """A third node says ``member`` is DEAD at ``inc``."""
        if inc < member.inc or (inc == member.inc and member.mode is LEFT):
            return
        member.inc = inc
        t = self._timing
        if now - member.heard < t.suspect_after:
            # This node hears it: let it refute (once per incarnation).
            if inc > member.relayed_inc:
                member.relayed_inc = inc
                self._actions.append(SendTo(member.name, (NodeState(member.name, DEAD, inc),)))
            return
        if now - member.vouched < t.suspect_after:
            return  # a helper vouched for it lately
        if member.status is DEAD:
            member.dead_inc = max(member.dead_inc, inc)
            member.held_from = None  # another node saw it die: not this node's isolation
            return
        before = member.public()
        member.status = DEAD
        member.dead_since = now
        member.held_from = None  # another node saw it die: not this node's isolation
        member.dead_inc = inc
        member.next_probe = now + t.recheck_interval
        self._drop_probes(member.name)
        self._after(member, before, inc)

    def _about_self(self, state: MemberState, inc: int) -> None:
        """Gossip about this node: refute suspicion, death or a stale record.

        Only the speaker does: a sibling worker relays what it heard to the speaker
        (the worker bus) and adopts its answer; refuting too, it would contradict a
        declaration the speaker made before the sibling heard of it."""
        if self._left or not self._speaker:
            return
        if inc > self._inc or (inc == self._inc and state is not self._mode):
            self._inc = min(inc + 1, MAX_INCARNATION)
            self._actions.append(Broadcast(NodeState(self._name, self._mode, self._inc)))

    def _own_mode(self) -> MemberState:
        """This node's own declaration from its state: left, drained, application down."""
        if self._left or self._app_gone:
            return LEFT
        if self._drain or self._app_down_since is not None:
            return DRAINING
        return ALIVE

    def _update_mode(self) -> None:
        if not self._speaker:
            return  # the speaker declares; a sibling adopts (adopt_own_state)
        mode = self._own_mode()
        if mode is not self._mode:
            self._set_mode(mode)

    def _set_mode(self, mode: MemberState) -> None:
        old = self._mode
        self._mode = mode
        self._inc = min(self._inc + 1, MAX_INCARNATION)
        self._actions.append(StateChanged(self._name, old, mode))
        self._actions.append(Broadcast(NodeState(self._name, mode, self._inc)))

"""Membership on the links: the frames peers send go into the machine, its actions go out.

`Gossip.frame` feeds one NODE_STATE, PROBE_REQUEST or PROBE_RESULT frame (from a
link, or relayed by a sibling worker) to lb.cluster.membership; `Gossip.run`
carries out what the machine asked: probes and gossip to peers, the node's own
state to the sibling workers when this process speaks for the node (OWN_STATE),
a log line per change of state, the links of a peer declared dead reset, the
farm view rebuilt, the timer brought forward.

It must not decide membership (lb.cluster does) nor own links (lb.node.peers
does): it is handed how to send and what to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog

from lb.clock import wall
from lb.cluster.membership import (
    Broadcast,
    Membership,
    MemberState,
    SendProbeRequest,
    SendProbeResult,
    SendTo,
    StateChanged,
)
from lb.config import Limits
from lb.wire import frames as fr
from lb.wire import membership as mw
from lb.wire.bus import encode_own_state

log = structlog.get_logger("lb.peers")


class Gossip:
    """The membership machine of one node process, driven from and onto its links."""

    def __init__(
        self,
        name: str,
        worker: int | None,
        loop: asyncio.AbstractEventLoop,
        membership: Membership,
        limits: Limits,
        *,
        peers: Sequence[str],
        send_control: Callable[[str, bytes], None],
        to_siblings: Callable[[list[bytes]], None],
        drop_links: Callable[[str, str], None],
        refresh_view: Callable[[], None],
        wake_at: Callable[[float | None], None],
    ) -> None:
        self.name = name
        self.worker = worker
        self.loop = loop
        self.membership = membership
        self.limits = limits
        self.peers = peers  # the node's peers, as Peers keeps them (reload changes them)
        self.send_control = send_control
        self.to_siblings = to_siblings
        self.drop_links = drop_links
        self.refresh_view = refresh_view
        self.wake_at = wake_at

    def frame(self, peer: str, frame: fr.Frame) -> bool:
        """A control frame from `peer`: False when it is not a membership frame."""
        message = mw.parse_membership_frame(frame)
        if message is None:
            return False  # an extension this version does not know: ignored (docs/protocol.md)
        now = self.loop.time()
        if isinstance(message, mw.ProbeRequest):
            self.membership.on_probe_request(peer, message.target, message.nonce, now)
        elif isinstance(message, mw.ProbeResult):
            self.membership.on_probe_result(peer, message.target, message.nonce, message.alive, now)
        else:
            for state in message:
                self.membership.on_node_state(peer, state, now, wall=wall())
        self.run()
        return True

    def run(self) -> None:
        """Carry out what the membership machine asked for."""
        changed = False
        for action in self.membership.take_actions():
            if isinstance(action, SendProbeRequest):
                frame = mw.encode_probe_request_frame(action.target, action.nonce)
                self.send_control(action.via, frame)
            elif isinstance(action, SendProbeResult):
                frame = mw.encode_probe_result_frame(action.target, action.nonce, action.alive)
                self.send_control(action.to, frame)
            elif isinstance(action, Broadcast):
                frame = mw.encode_node_state_frame([action.state])
                for peer in self.peers:
                    self.send_control(peer, frame)
                if action.state.node == self.name and self.membership.speaker:
                    # the sibling workers say what the speaker says (lb.wire.bus OWN_STATE)
                    state = action.state
                    self.to_siblings([encode_own_state(state.state, state.incarnation)])
            elif isinstance(action, SendTo):
                if action.states:
                    self.send_control(action.peer, mw.encode_node_state_frame(action.states))
            elif isinstance(action, StateChanged):
                changed = True
                self._changed(action)
        if changed:
            self.refresh_view()
        # an input may have brought a membership timer forward
        self.wake_at(self.membership.next_deadline())

    def _changed(self, action: StateChanged) -> None:
        log.info(
            "node_state",
            node=self.name,
            worker=self.worker,
            peer=action.node,
            old=action.old.name.lower() if action.old is not None else None,
            new=action.new.name.lower(),
        )
        if (
            action.node == self.name
            and action.new is MemberState.LEFT
            and self.membership.app_down_since is not None
        ):
            log.warning(
                "app_down_rehome",
                node=self.name,
                worker=self.worker,
                after=self.limits.app_down_rehome_after,
                reason="the application stayed down: its sessions are re-homed",
            )
        if action.new is MemberState.DEAD:
            # a dead peer's flows will never finish: reset them now. A peer that
            # LEFT is finishing its flows and closes its links itself.
            self.drop_links(action.node, "the peer was declared dead")


__all__ = ["Gossip"]

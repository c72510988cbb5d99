"""The workers of one node agree on where a client source's new sessions go.

A browser opens about six connections at once, and the kernel spreads them over
the node's workers (SO_REUSEPORT), which share no memory. Each worker places a
source's new sessions by the same rule (lb.routing.placement), but on loads it
heard at its own moments, so two workers could choose two homes for one page.
So worker 0 decides for the node, by message (lb.wire.bus PLACE / PLACED):

- worker 0 places as usual and tells its siblings every source it placed
  afresh (PLACED: source, home, placed at);
- a sibling that would place a source afresh asks worker 0 (PLACE: source, the
  home it would choose) and holds that request, and any other new session of
  the same source, until the answer; every worker remembers what worker 0 says
  (lb.routing.memory), so the source's later new sessions need no question;
- an answer that does not come within `ASK_TIMEOUT` (worker 0 restarting)
  lets the sibling go on with its own choice.

Only HTTP services ask (their requests can wait for a decision, as for a
directory look-up); a tcp connection is placed by its worker alone. This is the
I/O side: the bus and a timer. It must not choose homes (lb.routing.route does).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import structlog

from lb.clock import wall
from lb.errors import FrameError
from lb.extract.api import Identifier
from lb.node.http_state import HttpClientState
from lb.node.siblings import Siblings
from lb.routing.directory import source_key
from lb.routing.route import Decision, Router
from lb.routing.view import FarmView
from lb.wire import frames as fr
from lb.wire.bus import decode_place, decode_placed, encode_place, encode_placed

log = structlog.get_logger("lb.placing")

ASK_TIMEOUT = 0.25  # seconds a sibling waits for worker 0's word before it goes on alone

Resume = Callable[[HttpClientState, Identifier | None], None]


class SiblingPlacement:
    """One worker's part: worker 0 answers and tells, its siblings ask and wait."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        siblings: Siblings,
        router: Callable[[], Router],
        view: Callable[[], FarmView],
        resume: Resume,
        counters: Counter[str],
    ) -> None:
        self.loop = loop
        self.siblings = siblings
        self.router = router  # the node's router now (a reload replaces it)
        self.view = view
        self.resume = resume  # decide again, without asking: the answer is remembered
        self.speaker = siblings.worker in (None, 0)
        # source -> the requests held for worker 0's answer, and its deadline
        self.waiting: dict[str, list[tuple[HttpClientState, Identifier | None]]] = {}
        self.deadlines: dict[str, asyncio.TimerHandle] = {}
        self.counters = counters  # placement_asks, placement_asks_late (the node's)

    def hold(
        self, client: HttpClientState, identifier: Identifier | None, decision: Decision
    ) -> bool:
        """After a new session's decision: True when the request waits for worker 0."""
        fresh = self.router().fresh_source
        if self.speaker:
            if fresh is not None:
                self._tell(fresh, decision.home)
            return False
        if fresh is not None:
            waiting = self.waiting.get(fresh)
            if waiting is None:
                self.counters["placement_asks"] += 1
                self.siblings.write(encode_place(fresh, decision.home))
                self.waiting[fresh] = [(client, identifier)]
                self.deadlines[fresh] = self.loop.call_later(ASK_TIMEOUT, self._late, fresh)
            else:
                waiting.append((client, identifier))
            return True
        if self.waiting and client.client[0]:
            waiting = self.waiting.get(source_key(client.client[0]))
            if waiting is not None:
                waiting.append((client, identifier))
                return True
        return False

    def _tell(self, source: str, home: str) -> None:
        memory = self.router().memory
        held = memory.held(source, wall()) if memory is not None else None
        at = held[1] if held is not None and held[0] == home else wall()
        self.siblings.write(encode_placed(source, home, at))

    # -- bus frames ------------------------------------------------------------------------
    def place_frame(self, frame: fr.Frame) -> None:
        """PLACE from a sibling: worker 0 answers for every worker (siblings ignore it)."""
        if not self.speaker:
            return
        try:
            source, proposal = decode_place(frame.payload)
        except FrameError as exc:
            log.warning("bus_frame_bad", type="PLACE", error=str(exc))
            return
        home, at = self.router().hold_for_source(source, proposal, self.view(), wall())
        self.siblings.write(encode_placed(source, home, at))

    def placed_frame(self, frame: fr.Frame) -> None:
        """PLACED from worker 0: remember it, and let the requests that waited for it go."""
        if self.speaker:
            return
        try:
            source, home, at = decode_placed(frame.payload)
        except FrameError as exc:
            log.warning("bus_frame_bad", type="PLACED", error=str(exc))
            return
        memory = self.router().memory
        if memory is not None:
            memory.remember(source, home, at)
        self._release(source)

    def _late(self, source: str) -> None:
        self.counters["placement_asks_late"] += 1
        log.warning(  # rare (worker 0 restarting or stalled): one line each
            "placement_ask_late",
            worker=self.siblings.worker,
            waited=ASK_TIMEOUT,
            requests=len(self.waiting.get(source, ())),
        )
        self._release(source)

    def _release(self, source: str) -> None:
        handle = self.deadlines.pop(source, None)
        if handle is not None:
            handle.cancel()
        for client, identifier in self.waiting.pop(source, ()):
            self.resume(client, identifier)

    def close(self) -> None:
        for handle in self.deadlines.values():
            handle.cancel()
        self.deadlines.clear()
        self.waiting.clear()


__all__ = ["ASK_TIMEOUT", "SiblingPlacement"]

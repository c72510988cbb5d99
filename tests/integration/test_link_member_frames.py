"""A malformed control frame from a logged-in member (real nodes, plaintext links).

docs/protocol.md: a malformed frame ends the link as a protocol error. The link
driver catches FrameError only around `LinkConnection.receive_data`; control
frames are decoded later, in `handle` -> `Peers.control_frame`, outside that
`try`, so a bad DIRECTORY_UPDATE or membership payload escapes `data_received`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from lb.wire import frames as fr
from lb.wire import membership as mw
from lb.wire.directory import DIRECTORY_UPDATE
from tests.integration.test_link_attacks import _login_as
from tests.support.farm import Farm

pytestmark = pytest.mark.integration

BAD = re.compile(r"Traceback|Exception in callback|Fatal error on transport")

MALFORMED = {
    # a count of 5 entries in a 2-byte payload
    "directory": fr.Frame(DIRECTORY_UPDATE, 0, 0, b"\x00\x05"),
    # a membership frame on a flow id other than 0
    "membership": fr.Frame(mw.NODE_STATE, 0, 7, b""),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
async def test_malformed_control_frame_is_a_counted_protocol_error(
    make_farm: Callable[..., Farm], kind: str
) -> None:
    farm = make_farm(nodes=("a", "b"), link_security="plaintext")
    since = len(farm.logs("a"))
    async with asyncio.timeout(20):
        rogue = await _login_as(farm, "a", "b")
        try:
            rogue.send(fr.encode_frame(MALFORMED[kind]))
            await rogue.read_for(1.0)
            assert rogue.closed, "the node kept a link that sent a malformed frame"
        finally:
            rogue.close()
    await asyncio.sleep(0.3)
    # expected: the link ends as a protocol error, counted, no traceback in the log;
    # seen: uvloop logs "Fatal error on transport" with the FrameError's traceback
    escaped = [ln for ln in farm.logs("a")[since:].splitlines() if BAD.search(ln)]
    assert not escaped, escaped
    counters = farm.tables("a")["counters"]
    assert counters.get("link_protocol_errors", 0) >= 1, counters

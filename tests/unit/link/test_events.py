"""The link events compare by value and show their fields, as the dataclasses they were."""

from __future__ import annotations

import pytest

from lb.link.events import Count, FlowData, FlowEnded, FlowEof, FlowOpened, PeerHeard
from lb.wire.frames import ConnRef

REF = ConnRef("192.0.2.1", 40000, "198.51.100.2", 80, "web")


def test_events_are_equal_by_type_and_fields() -> None:
    assert FlowData(1, b"x") == FlowData(1, b"x")
    assert FlowData(1, b"x") != FlowData(1, b"y")
    assert FlowData(1, b"x") != FlowData(2, b"x")
    assert FlowEof(1) != FlowEnded(1)  # same fields, another kind of event
    assert FlowOpened(3, REF, 1) == FlowOpened(3, REF, 1)
    assert [Count("table_full")] == [Count("table_full")]
    assert FlowEof(1) != (1,)


def test_events_show_their_fields() -> None:
    assert repr(FlowData(7, b"hi")) == "FlowData(flow_id=7, data=b'hi')"
    assert repr(PeerHeard(3, None)) == "PeerHeard(load=3, ping_token=None)"


def test_events_are_mutable_values_so_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(FlowEof(1))


def test_events_match_by_position() -> None:
    match FlowData(4, b"body"):
        case FlowData(flow_id, data):
            assert (flow_id, data) == (4, b"body")
        case _:
            pytest.fail("FlowData did not match its positional pattern")

"""The NEW frame's connection reference built by the entry side (docs/protocol.md)."""

from __future__ import annotations

import pytest

from lb.config import Address
from lb.node.entry import make_conn_ref


@pytest.mark.parametrize(
    ("client", "home", "expected"),
    [
        (("10.0.0.7", 5555), Address("10.0.0.2", 80), ("10.0.0.7", "10.0.0.2")),
        (("2001:db8::7", 5555), Address("2001:db8::2", 80), ("2001:db8::7", "2001:db8::2")),
        # mixed families: the IPv4 side is mapped into IPv6 so both share one family
        (("2001:db8::7", 5555), Address("10.0.0.2", 80), ("2001:db8::7", "::ffff:10.0.0.2")),
        (("10.0.0.7", 5555), Address("2001:db8::2", 80), ("::ffff:10.0.0.7", "2001:db8::2")),
        # a host name as listen address: the unspecified address of the client's family
        (("10.0.0.7", 5555), Address("web.internal", 80), ("10.0.0.7", "0.0.0.0")),
    ],
)
def test_conn_ref_keeps_one_family(
    client: tuple[str, int], home: Address, expected: tuple[str, str]
) -> None:
    ref = make_conn_ref(client, home, "web")
    assert (ref.client_ip, ref.home_ip) == expected
    assert (ref.client_port, ref.home_port, ref.service) == (5555, 80, "web")

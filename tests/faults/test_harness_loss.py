"""The harness's packet loss acts on the wire, as real loss does: the sender never sees it.

`NetFarm.loss(node, percent)` must drop packets between the node and the
bridge, not in the node's own stack. A packet a node's own OUTPUT hook drops is
a local send error to the sender (EPERM), which real loss never is, and Linux
acts on it: a request socket whose SYN-ACK retransmission fails to go out is
dropped (reqsk_timer_handler gives up on a failed inet_rtx_syn_ack). A client
that an earlier SYN-ACK had already connected, whose ACK and request were lost,
then gets a reset from the listener on its next segment: a request "lost" that
no lossy network would lose, and that no node ever saw (test_loss_delay failed
so, rarely, at 10 %; at 25 % about twice a run).

Checked with UDP, where the local verdict is visible to the caller at once: with
100 % loss on node c, a datagram sent from inside c's namespace must leave
without an error and then not arrive; with no loss it arrives.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.support.netns import CLIENT_IP, NetFarm

pytestmark = pytest.mark.faults

PORT = 9999

RECEIVE = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(({CLIENT_IP!r}, {PORT}))
s.settimeout(3.0)
print("ready", flush=True)
try:
    print("got", s.recv(100).decode())
except TimeoutError:
    print("nothing")
"""

SEND = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"hello", ({CLIENT_IP!r}, {PORT}))
    print("sent")
except OSError as exc:
    print("refused", exc.errno)
"""


def _send_and_receive(farm: NetFarm, node: str) -> tuple[str, str]:
    """What the sender in `node`'s namespace saw, and what the client namespace got."""
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", farm.client_ns, sys.executable, "-c", RECEIVE],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        sent = subprocess.run(
            ["ip", "netns", "exec", farm.ns(node), sys.executable, "-c", SEND],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        got = receiver.stdout.readline().strip()
    finally:
        receiver.kill()
        receiver.wait()
    return sent, got


def test_loss_is_on_the_wire_not_in_the_sender(make_netfarm: Callable[..., NetFarm]) -> None:
    farm = make_netfarm()
    assert _send_and_receive(farm, "c") == ("sent", "got hello")  # the probe works
    farm.loss("c", 100)
    time.sleep(0.1)
    sent, got = _send_and_receive(farm, "c")
    assert sent == "sent", f"the loss refused the packet in the sender's own stack: {sent}"
    assert got == "nothing", f"100 % loss let a datagram through: {got}"
    farm.heal_all()
    assert _send_and_receive(farm, "c") == ("sent", "got hello")

"""A loopback packet capture for tests: the TCP payload bytes to or from some ports.

An AF_PACKET socket on `lo` (root only) read by a thread: what a stranger
with a tap on the link would see. Each packet is taken once (the copy the
kernel shows as outgoing is skipped). IPv4 and IPv6.
"""

from __future__ import annotations

import os
import socket
import threading
from types import TracebackType

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def can_capture() -> bool:
    return hasattr(socket, "AF_PACKET") and os.geteuid() == 0


class LoopbackCapture:
    """TCP payloads on loopback whose source or destination port is in `ports`."""

    def __init__(self, ports: set[int]) -> None:
        self.ports = ports
        self.payload = bytearray()
        self.packets = 0
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def __enter__(self) -> LoopbackCapture:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(262144)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] == PACKET_OUTGOING:
                continue
            self._take(frame)

    def _take(self, frame: bytes) -> None:
        ether_type = frame[12:14]
        ip = frame[14:]
        if ether_type == b"\x08\x00" and len(ip) >= 20:
            header = (ip[0] & 0x0F) * 4
            protocol = ip[9]
            segment = ip[header : int.from_bytes(ip[2:4], "big")]
        elif ether_type == b"\x86\xdd" and len(ip) >= 40:
            protocol = ip[6]
            segment = ip[40 : 40 + int.from_bytes(ip[4:6], "big")]
        else:
            return
        if protocol != 6 or len(segment) < 20:
            return
        source = int.from_bytes(segment[0:2], "big")
        destination = int.from_bytes(segment[2:4], "big")
        if source in self.ports or destination in self.ports:
            self.packets += 1
            self.payload += segment[(segment[12] >> 4) * 4 :]

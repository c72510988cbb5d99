"""What a client connection has shown so far: the one argument of every extractor.

Part of the extractor API (lb.extract.api re-exports `Seen`); a module of its own so
that the compiled build makes it a native class (made once per request head), while
lb.extract.api stays plain Python for plugin authors. Pure: a value, no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from lb.wire.http import RequestHead

__all__ = ["Seen"]


@mypyc_attr(acyclic=True, free_list_len=1)  # one per request head: reused
@dataclass(slots=True, init=False)  # __init__ written out: compiled, it stays native code
class Seen:
    """What a client connection has shown so far."""

    data: bytes
    """Bytes received so far (bounded by the listener's head limit)."""
    eof: bool
    """The client half-closed: no more bytes will come."""
    client: tuple[str, int]
    """Client address and port."""
    http: RequestHead | None
    """The parsed request head on HTTP listeners once it is complete, else None."""
    now: float
    """The current time, from the caller."""

    def __init__(
        self,
        data: bytes,
        eof: bool,
        client: tuple[str, int],
        http: RequestHead | None,
        now: float,
    ) -> None:
        self.data = data
        self.eof = eof
        self.client = client
        self.http = http
        self.now = now

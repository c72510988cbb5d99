"""lb.wire._headscan, the compiled build's C quick pass of HTTP heads (_headscan.c)."""

def scan_request(
    buf: bytes | bytearray, pos: int, stop: int, /
) -> tuple[int, str, str, int, list[tuple[str, str]]] | None: ...
def scan_response(
    buf: bytes | bytearray, start: int, stop: int, /
) -> tuple[int, list[tuple[bytes, bytes]]] | None: ...

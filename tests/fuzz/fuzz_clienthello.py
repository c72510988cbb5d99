"""Fuzz target for lb.wire.tls (atheris): ClientHello parsing and the ServerHello watcher.

Not a pytest module. Run it through tests/fuzz/run.sh, or alone after `pip install
atheris`, seeded with the captured streams (libFuzzer writes new inputs into the
first corpus directory, so give it a scratch one before the read-only seeds):

    mkdir -p /tmp/corpus-ch
    .venv/bin/python tests/fuzz/fuzz_clienthello.py -max_total_time=60 \
        /tmp/corpus-ch tests/fixtures/tls

Checks, for any input: parse_client_hello returns None or a ClientHello or raises
TlsError (nothing else); a decided prefix stays decided; a ClientHello parses the
same from its own ``length`` bytes and from its message re-framed into other
records; max_bytes below that length is a TlsError. ServerHelloWatcher never
raises and gives the same answer for any chunking of the stream.
"""

from __future__ import annotations

import itertools
import struct
import sys

import atheris

with atheris.instrument_imports():
    from lb.errors import TlsError
    from lb.wire.tls import ClientHello, ServerHelloWatcher, parse_client_hello


def _outcome(data: bytes, max_bytes: int = 65536) -> ClientHello | str | None:
    try:
        return parse_client_hello(data, max_bytes)
    except TlsError:
        return "error"


def _message(data: bytes, length: int) -> bytes:
    """The handshake bytes of the records in ``data[:length]``."""
    out = bytearray()
    pos = 0
    while pos < length:
        (size,) = struct.unpack_from("!H", data, pos + 3)
        out += data[pos + 5 : min(pos + 5 + size, length)]
        pos += 5 + size
    return bytes(out)


def _frame(message: bytes, cuts: list[int]) -> bytes:
    cuts = [*cuts, *range(16384, len(message), 16384)]  # no record over 2**14 bytes
    bounds = sorted({0, len(message), *(c for c in cuts if 0 < c < len(message))})
    return b"".join(
        b"\x16\x03\x01" + struct.pack("!H", b - a) + message[a:b]
        for a, b in itertools.pairwise(bounds)
    )


def _watch(data: bytes, sizes: list[int]) -> tuple[bool, object]:
    watcher = ServerHelloWatcher(4096)
    pos = 0
    for size in sizes:
        watcher.feed(data[pos : pos + size])
        pos += size
    watcher.feed(data[pos:])
    return watcher.done, watcher.result


def test_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    cut = fdp.ConsumeIntInRange(0, 4096)
    cuts = [fdp.ConsumeIntInRange(1, 2048) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    sizes = [fdp.ConsumeIntInRange(0, 64) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    data = fdp.ConsumeBytes(fdp.remaining_bytes())

    result = _outcome(data)
    assert result is None or result == "error" or isinstance(result, ClientHello), result
    prefix = _outcome(data[: min(cut, len(data))])
    if prefix is not None:
        assert prefix == result, (prefix, result)
    if isinstance(result, ClientHello):
        assert _outcome(data[: result.length]) == result
        assert _outcome(data, result.length - 1) == "error"
        reframed = _frame(_message(data, result.length), cuts)
        again = _outcome(reframed)
        assert isinstance(again, ClientHello)
        assert again.length == len(reframed)
        assert (again.sni, again.session_id, again.extensions) == (
            result.sni,
            result.session_id,
            result.extensions,
        )

    assert _watch(data, sizes) == _watch(data, [])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

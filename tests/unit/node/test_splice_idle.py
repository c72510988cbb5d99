"""lb.node.splice.silent_for: the idle check of one connection, driven with the sweep
times a busy node gives it (late, uneven), never with a clock."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from lb.node.splice import silent_for

TIMEOUT = 2.0
INTERVAL = 0.25


@dataclass
class Conn:
    active: bool = True  # as a connection starts: its accept counts as a byte
    quiet_since: float = 0.0


def first_close(conn: Conn, sweeps: list[float]) -> float | None:
    for now in sweeps:
        if silent_for(conn, now, TIMEOUT):
            return now
    return None


def test_closed_at_the_first_sweep_past_the_timeout_even_when_every_sweep_ran_late() -> None:
    """Sweeps due every 0.25 s each start 0.1 s after the previous one ran (a busy
    node): counting sweeps would close after 8 of them, 2.8 s after the last byte;
    measured in time it is the first sweep 2 s past the sweep that saw that byte."""
    conn = Conn()
    sweeps = [round(0.35 * k, 2) for k in range(1, 20)]  # 0.35, 0.70, ...
    assert first_close(conn, sweeps) == 2.45  # quiet since 0.35 (the accept's sweep)


def test_a_byte_between_sweeps_restarts_the_silence() -> None:
    conn = Conn()
    assert not silent_for(conn, 0.25, TIMEOUT)  # the accept: quiet since 0.25
    assert not silent_for(conn, 2.0, TIMEOUT)
    conn.active = True  # a byte moved at, say, 2.1
    assert not silent_for(conn, 2.25, TIMEOUT)  # seen: quiet since 2.25
    assert not silent_for(conn, 4.0, TIMEOUT)
    assert silent_for(conn, 4.25, TIMEOUT)


@given(
    gaps=st.lists(st.floats(min_value=0.01, max_value=1.5), min_size=1, max_size=60),
    byte_after=st.lists(st.booleans(), min_size=60, max_size=60),
)
def test_never_closed_before_the_timeout_and_at_most_one_gap_after_it(
    gaps: list[float], byte_after: list[bool]
) -> None:
    """Any sweep times and any bytes between sweeps: the close comes no sooner than
    `timeout` after the last byte (the last byte is no later than the sweep before the
    one that saw it), and no later than the first sweep at or past the timeout counted
    from the sweep that saw it."""
    conn = Conn()
    now = 0.0
    last_byte = 0.0  # the accept
    seen_at: float | None = None  # the sweep that saw the last byte
    for gap, byte in zip(gaps, byte_after, strict=False):
        now += gap
        was_active = conn.active
        closed = silent_for(conn, now, TIMEOUT)
        if was_active:
            seen_at = now
        if closed:
            assert now - last_byte >= TIMEOUT
            return
        assert seen_at is not None
        assert now - seen_at < TIMEOUT  # not closed although due: never
        if byte:
            conn.active = True
            last_byte = now  # just after this sweep: the latest it can be for the next

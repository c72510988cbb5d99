"""The poll helper of the integration and fault tests (tests/support/wait.py), on its own.

No farm and no sockets: checks that count their calls, with timeouts of a few
tenths of a second, so the module runs in about a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.support.wait import (
    eventually,
    eventually_async,
    eventually_passes,
    eventually_passes_async,
)

# Scheduling on a busy 2-core machine: how late a sleep may wake up.
SLACK = 0.5


def after(n: int, value: object = "done", falsy: object = None) -> Callable[[], object]:
    """A check that returns `falsy` on its first `n` calls and `value` from then on."""
    calls = []

    def check() -> object:
        calls.append(1)
        return value if len(calls) > n else falsy

    check.calls = calls  # type: ignore[attr-defined]
    return check


def failing_until(n: int, value: object = None) -> Callable[[], object]:
    """An assert-style check that fails its first `n` calls, saying which call it was."""
    calls = []

    def check() -> object:
        calls.append(1)
        assert len(calls) > n, f"call {len(calls)} of {n} failing ones"
        return value

    check.calls = calls  # type: ignore[attr-defined]
    return check


def test_returns_the_first_truthy_value_without_waiting_once_it_holds() -> None:
    check = after(0, value={"node": "a"})
    t0 = time.monotonic()
    assert eventually(check, timeout=5, interval=1, what="x") == {"node": "a"}
    assert time.monotonic() - t0 < 0.5
    assert len(check.calls) == 1  # type: ignore[attr-defined]


def test_polls_until_the_check_holds() -> None:
    check = after(3, value=7, falsy=0)
    assert eventually(check, timeout=5, interval=0.01, what="x") == 7
    assert len(check.calls) == 4  # type: ignore[attr-defined]


def test_fails_after_the_timeout_with_what_and_the_last_value() -> None:
    values = iter(range(1000))
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as info:
        eventually(lambda: [] if next(values) < 999 else [1], timeout=0.3, interval=0.05, what="W")
    took = time.monotonic() - t0
    assert 0.3 <= took < 0.3 + SLACK, took
    text = str(info.value)
    assert text.startswith("W: not within 0.3 s (")
    assert text.endswith("last value: []")


def test_the_last_check_runs_at_the_deadline_not_one_interval_before() -> None:
    """A condition that holds from 0.25 s on is seen with interval 10 s and timeout 0.25 s."""
    start = time.monotonic()
    assert eventually(lambda: time.monotonic() - start >= 0.25, timeout=0.25, interval=10, what="x")
    assert time.monotonic() - start < 0.25 + SLACK  # it did not sleep the whole interval


def test_checks_are_spaced_by_the_interval() -> None:
    check = after(10**6)
    with pytest.raises(AssertionError) as info:
        eventually(check, timeout=0.3, interval=0.1, what="x")
    calls = len(check.calls)  # type: ignore[attr-defined]
    assert 3 <= calls <= 5, calls  # at 0, 0.1, 0.2, 0.3 s (and one more if a sleep ran short)
    assert f"({calls} checks)" in str(info.value)


def test_a_zero_timeout_still_checks_once() -> None:
    assert eventually(lambda: "yes", timeout=0, what="x") == "yes"
    check = after(1)
    with pytest.raises(AssertionError, match=r"\(1 checks\)"):
        eventually(check, timeout=0, what="x")
    assert len(check.calls) == 1  # type: ignore[attr-defined]


def test_negative_timeout_or_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        eventually(lambda: True, timeout=-1, what="x")
    with pytest.raises(ValueError):
        eventually_passes(lambda: None, timeout=1, interval=-0.1, what="x")


def test_an_unexpected_exception_propagates_at_once() -> None:
    calls = []

    def check() -> bool:
        calls.append(1)
        raise KeyError("boom")

    t0 = time.monotonic()
    with pytest.raises(KeyError):
        eventually(check, timeout=5, what="x")
    with pytest.raises(KeyError):
        eventually_passes(check, timeout=5, what="x")
    assert len(calls) == 2
    assert time.monotonic() - t0 < 0.5


def test_truthy_form_does_not_retry_an_assertion_error() -> None:
    """In the truthy form a failed assert inside the check is a failure, not a "not yet"."""
    check = failing_until(5)
    with pytest.raises(AssertionError, match="call 1 of 5"):
        eventually(check, timeout=5, what="x")
    assert len(check.calls) == 1  # type: ignore[attr-defined]


def test_retry_on_counts_those_exceptions_as_not_yet() -> None:
    attempts = []

    def connect() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("refused")
        return "up"

    assert eventually(connect, timeout=5, interval=0.01, what="x", retry_on=(OSError,)) == "up"
    assert len(attempts) == 3


def test_retry_on_failure_names_the_last_exception() -> None:
    def refuse() -> bool:
        raise ConnectionRefusedError("refused")

    with pytest.raises(AssertionError) as info:
        eventually(refuse, timeout=0.1, interval=0.02, what="no listener", retry_on=(OSError,))
    assert "no listener: not within 0.1 s" in str(info.value)
    assert str(info.value).endswith("last failure: ConnectionRefusedError: refused")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_passes_form_returns_once_the_check_stops_failing() -> None:
    check = failing_until(2, value="v")
    assert eventually_passes(check, timeout=5, interval=0.01, what="x") == "v"
    assert len(check.calls) == 3  # type: ignore[attr-defined]


def test_passes_form_accepts_a_check_that_returns_none() -> None:
    assert eventually_passes(lambda: None, timeout=1, what="x") is None


def test_passes_form_fails_with_the_last_assertion_message() -> None:
    check = failing_until(10**6)
    with pytest.raises(AssertionError) as info:
        eventually_passes(check, timeout=0.2, interval=0.05, what="flows left")
    calls = len(check.calls)  # type: ignore[attr-defined]
    text = str(info.value)
    assert text.startswith("flows left: not within 0.2 s (")
    # (pytest's assertion rewriting may add its explanation after the message)
    assert f"; last failure: call {calls} of 1000000 failing ones" in text
    assert isinstance(info.value.__cause__, AssertionError)


def test_passes_form_names_an_empty_assertion() -> None:
    def bare() -> None:
        raise AssertionError

    with pytest.raises(AssertionError, match=r"last failure: AssertionError$"):
        eventually_passes(bare, timeout=0, what="x")


async def test_async_form_awaits_a_coroutine_check() -> None:
    calls = []

    async def check() -> int:
        calls.append(1)
        await asyncio.sleep(0)
        return len(calls) if len(calls) >= 3 else 0

    assert await eventually_async(check, timeout=5, interval=0.01, what="x") == 3


async def test_async_form_takes_a_plain_check_too() -> None:
    check = after(2, value="plain")
    assert await eventually_async(check, timeout=5, interval=0.01, what="x") == "plain"


async def test_async_form_lets_the_loop_run_while_it_waits() -> None:
    """What the check waits for is done by another task: the wait must not block the loop."""
    flag = asyncio.Event()

    async def set_later() -> None:
        await asyncio.sleep(0.1)
        flag.set()

    task = asyncio.create_task(set_later())
    assert await eventually_async(flag.is_set, timeout=5, interval=0.02, what="x")
    await task


async def test_async_form_fails_after_the_timeout() -> None:
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"^link down: not within 0.2 s .*last value: False$"):
        await eventually_async(lambda: False, timeout=0.2, interval=0.05, what="link down")
    assert 0.2 <= time.monotonic() - t0 < 0.2 + SLACK


async def test_async_passes_form_retries_assertions_and_propagates_others() -> None:
    check = failing_until(2, value="ok")

    async def acheck() -> object:
        return check()

    assert await eventually_passes_async(acheck, timeout=5, interval=0.01, what="x") == "ok"

    async def broken() -> None:
        raise RuntimeError("not an assertion")

    with pytest.raises(RuntimeError):
        await eventually_passes_async(broken, timeout=5, what="x")
    with pytest.raises(AssertionError, match="last failure: call 1 of 9"):
        await eventually_passes_async(failing_until(9), timeout=0, what="x")

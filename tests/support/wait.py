"""Waiting for a condition in the integration and fault tests: one poll loop with a deadline.

`eventually(check, timeout=..., interval=..., what=...)` calls `check` until it
returns a truthy value and returns that value; `eventually_passes(...)` calls an
assert-style `check` until it stops raising AssertionError and returns what it
returned. After `timeout` seconds both fail with an AssertionError that names
`what`, the number of checks made and the last value seen (or the last
assertion's message, chained as the cause). `eventually_async` and
`eventually_passes_async` do the same in a coroutine, for checks that are
coroutine functions (or plain functions), sleeping with asyncio between checks.

`check` always runs at least once and once more at the deadline; between
checks the loop sleeps `interval` seconds (never past the deadline). An
exception other than the ones named is never swallowed: it propagates at once.

This module must not import lb and must not sleep without a deadline: it is
the tests' only poll loop, so a wait that has no bound, or one that passes on
a condition it never saw hold, would weaken every test that uses it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

#: what `retry_on` takes: the exceptions that count as "not yet" instead of failing at once
Retryable = tuple[type[BaseException], ...]

_NOTHING = object()


class _Poll:
    """The bookkeeping shared by the sync and async loops (no sleeping, no calling)."""

    def __init__(self, timeout: float, interval: float, what: str) -> None:
        if timeout < 0 or interval < 0:
            raise ValueError(f"timeout and interval must be >= 0 (got {timeout}, {interval})")
        self.timeout = timeout
        self.interval = interval
        self.what = what
        self.deadline = time.monotonic() + timeout
        self.checks = 0
        self.last_value: object = _NOTHING
        self.last_error: BaseException | None = None

    def saw_value(self, value: object) -> None:
        self.checks += 1
        self.last_value, self.last_error = value, None

    def saw_error(self, error: BaseException) -> None:
        self.checks += 1
        self.last_error = error

    def pause(self) -> float | None:
        """Seconds to sleep before the next check, or None when the time is up."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        return min(self.interval, left)

    def failure(self) -> AssertionError:
        head = f"{self.what}: not within {self.timeout:g} s ({self.checks} checks)"
        if self.last_error is not None:
            err = self.last_error
            text = str(err) or type(err).__name__
            if not isinstance(err, AssertionError):
                text = f"{type(err).__name__}: {text}"
            failure = AssertionError(f"{head}; last failure: {text}")
            failure.__cause__ = err
            return failure
        return AssertionError(f"{head}; last value: {self.last_value!r}")


def eventually(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str,
    retry_on: Retryable = (),
) -> T:
    """Call `check` until it returns something truthy; return that.

    An exception of a type in `retry_on` counts as "not yet" (an AssertionError
    does not, unless named: use `eventually_passes` for assert-style checks).
    """
    poll = _Poll(timeout, interval, what)
    while True:
        try:
            value = check()
        except retry_on as exc:
            poll.saw_error(exc)
        else:
            if value:
                return value
            poll.saw_value(value)
        pause = poll.pause()
        if pause is None:
            raise poll.failure()
        time.sleep(pause)


def eventually_passes(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str,
    retry_on: Retryable = (),
) -> T:
    """Call `check` until it returns without raising AssertionError; return what it returned.

    The failure after `timeout` carries the last AssertionError's message.
    """
    retry: Retryable = (AssertionError, *retry_on)
    poll = _Poll(timeout, interval, what)
    while True:
        try:
            return check()
        except retry as exc:
            poll.saw_error(exc)
        pause = poll.pause()
        if pause is None:
            raise poll.failure()
        time.sleep(pause)


async def _call(check: Callable[[], Awaitable[T] | T]) -> T:
    value = check()
    if inspect.isawaitable(value):
        return await value
    return value


@overload
async def eventually_async(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    interval: float = ...,
    what: str,
    retry_on: Retryable = ...,
) -> T: ...
@overload
async def eventually_async(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = ...,
    what: str,
    retry_on: Retryable = ...,
) -> T: ...
async def eventually_async(
    check: Callable[[], Awaitable[T] | T],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str,
    retry_on: Retryable = (),
) -> T:
    """`eventually` in a coroutine: `check` may be a coroutine function or a plain one."""
    poll = _Poll(timeout, interval, what)
    while True:
        try:
            value = await _call(check)
        except retry_on as exc:
            poll.saw_error(exc)
        else:
            if value:
                return value
            poll.saw_value(value)
        pause = poll.pause()
        if pause is None:
            raise poll.failure()
        await asyncio.sleep(pause)


@overload
async def eventually_passes_async(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    interval: float = ...,
    what: str,
    retry_on: Retryable = ...,
) -> T: ...
@overload
async def eventually_passes_async(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = ...,
    what: str,
    retry_on: Retryable = ...,
) -> T: ...
async def eventually_passes_async(
    check: Callable[[], Awaitable[T] | T],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str,
    retry_on: Retryable = (),
) -> T:
    """`eventually_passes` in a coroutine: `check` may be a coroutine function or a plain one."""
    retry: Retryable = (AssertionError, *retry_on)
    poll = _Poll(timeout, interval, what)
    while True:
        try:
            return await _call(check)
        except retry as exc:
            poll.saw_error(exc)
        pause = poll.pause()
        if pause is None:
            raise poll.failure()
        await asyncio.sleep(pause)


__all__ = ["eventually", "eventually_async", "eventually_passes", "eventually_passes_async"]

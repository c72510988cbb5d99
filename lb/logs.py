"""Logging setup: structlog to stderr, console or JSON lines.

Events are logged, never bytes: no per-chunk lines on the hot path; the one
per-request line is the access log's (lb.node.accesslog), which can be turned
off or sampled. Records of the standard library's `logging` (asyncio's
warnings among them) and `warnings.warn` go through the same structlog chain,
so json mode stays one JSON object per line. This module configures and
writes lines; it does no other I/O.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class LineLogger:
    """Writes each rendered event as one line with a single write(2) on stderr's descriptor.

    The workers of a node share one log file: a line written in one system call
    (appended, O_APPEND) is never cut by another process's line, so json mode
    stays one JSON object per line.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def msg(self, message: str) -> None:
        data = (message + "\n").encode("utf-8", "backslashreplace")
        while data:
            try:
                written = os.write(self._fd, data)
            except InterruptedError:
                continue
            except OSError:
                return  # logging must never take the node down
            data = data[written:]

    log = debug = info = warn = warning = msg
    err = error = critical = exception = fatal = failure = msg


def _line_logger(*_args: Any) -> LineLogger:
    try:
        return LineLogger(sys.stderr.fileno())
    except (AttributeError, ValueError, OSError):
        return LineLogger(2)


class IsoStamper:
    """Adds "timestamp" as ISO 8601 UTC with microseconds ("2026-01-02T03:04:05.123456Z").

    The same text as structlog's TimeStamper(fmt="iso", utc=True), made for a
    line per request: the date and time of day are formatted once a second,
    the microseconds per event.
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _logger: Any, _method: str, event_dict: Any) -> Any:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        micros = int((now - second) * 1_000_000)
        event_dict["timestamp"] = f"{self._prefix}.{micros:06d}Z"
        return event_dict


def _std_level(levelno: int) -> int:
    """A stdlib record's level as one of structlog's named levels (custom levels round down)."""
    for named in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= named:
            return named
    return logging.DEBUG


class StructlogHandler(logging.Handler):
    """Hands every stdlib `logging` record to structlog: one event, same renderer, same stream.

    The event is the record's message; `logger` names its origin ("asyncio",
    "py.warnings", ...); an exception travels as `exc_info` and is rendered by
    the chain (one JSON string in json mode, never raw traceback lines).
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string in someone else's call
                message = str(record.msg)
            kw: dict[str, Any] = {"logger": record.name}
            if record.exc_info and record.exc_info[0] is not None:
                kw["exc_info"] = record.exc_info
            structlog.get_logger().log(_std_level(record.levelno), message, **kw)
        except Exception:  # logging must never take the node down
            return


def _route_stdlib(level: int) -> None:
    """Make the root logger's only handler a StructlogHandler (idempotent) at `level`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(StructlogHandler())
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> structlog


_processors: list[structlog.types.Processor] = []


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    """Send structlog events to stderr at `level`, as console text or one JSON object a line.

    The standard library's `logging` (asyncio's warnings, e.g. a TLS protocol's
    "returning true from eof_received()") and `warnings.warn` are routed
    through the same chain, filtered at the same level.
    """
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    _processors[:] = [
        structlog.processors.add_log_level,
        IsoStamper(),
        structlog.processors.format_exc_info,
        renderer,
    ]
    numeric = _LEVELS.get(level, logging.INFO)
    structlog.configure(
        processors=list(_processors),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_line_logger,
        cache_logger_on_first_use=True,
    )
    _route_stdlib(numeric)


def access_logger(**initial: Any) -> Any:
    """A logger for the access log: the configured chain and stream, at info whatever `level`.

    An access log is asked for with its own switch (`access_log`), as in nginx
    or HAProxy, so `level = "warning"` does not silence it. Call after
    configure_logging (before it, lines render as console text).
    """
    processors = list(_processors) or [
        structlog.processors.add_log_level,
        IsoStamper(),
        structlog.dev.ConsoleRenderer(colors=False),
    ]
    # the bound logger itself, not a lazy proxy: no lookup per line
    return structlog.wrap_logger(
        _line_logger(),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind(**initial)

"""Logging setup: structlog to stderr, console or JSON lines.

Events are logged, never bytes: no per-chunk or per-request lines on the hot
path. This module configures; it does no other I/O.
"""

from __future__ import annotations

import logging
import os
import sys
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


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    """Send structlog events to stderr at `level`, as console text or one JSON object a line."""
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=_line_logger,
        cache_logger_on_first_use=True,
    )

"""lb.logs: stdlib logging and warnings go through structlog, so json mode is one object a line.

Each case runs in a fresh interpreter: configure_logging changes process-wide
state (structlog, the root logger) and writes on descriptor 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging, warnings
import structlog
from lb.logs import configure_logging, access_logger
configure_logging("info", "json")
structlog.get_logger().info("own_event", node="a")
asyncio_log = logging.getLogger("asyncio")
asyncio_log.warning("returning true from eof_received() has no effect when using ssl")
logging.getLogger("asyncio").debug("below the level: dropped")
logging.getLogger("x").log(25, "custom level %s", "between info and warning")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("asyncio").exception("Task exception was never retrieved")
warnings.warn("a deprecation\\nover two lines", DeprecationWarning)
access_logger(node="a").info("access", status=200)
"""


def _run(script: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout == ""
    return proc.stderr.splitlines()


def test_stdlib_records_and_warnings_are_json_lines() -> None:
    lines = _run(SCRIPT)
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    events = {r["event"]: r for r in records}
    assert len(records) == 6, lines
    assert events["own_event"]["node"] == "a"
    eof = events["returning true from eof_received() has no effect when using ssl"]
    assert (eof["logger"], eof["level"]) == ("asyncio", "warning")
    assert "timestamp" in eof
    custom = events["custom level between info and warning"]
    assert custom["level"] == "info"  # 25 rounds down to a named level
    crashed = events["Task exception was never retrieved"]
    assert crashed["level"] == "error"
    assert "ZeroDivisionError" in crashed["exception"]
    warned = next(r for r in records if r.get("logger") == "py.warnings")
    assert "a deprecation\nover two lines" in warned["event"]
    assert warned["level"] == "warning"
    assert events["access"]["status"] == 200
    assert not any("below the level" in line for line in lines)


def test_access_logger_ignores_the_level() -> None:
    script = """
import structlog
from lb.logs import configure_logging, access_logger
configure_logging("error", "json")
structlog.get_logger().info("filtered")
access_logger(node="a").info("access", status=204)
"""
    records = [json.loads(line) for line in _run(script)]
    assert [(r["event"], r["status"], r["node"]) for r in records] == [("access", 204, "a")]


def test_iso_stamper_writes_what_structlog_timestamper_writes() -> None:
    import re
    from datetime import datetime, timedelta

    import structlog

    from lb.logs import IsoStamper

    ours = IsoStamper()(None, "info", {})["timestamp"]
    theirs = structlog.processors.TimeStamper(fmt="iso", utc=True)(None, "info", {})["timestamp"]
    pattern = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    assert re.fullmatch(pattern, ours), ours
    assert re.fullmatch(pattern, theirs), theirs
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    gap = datetime.strptime(theirs, fmt) - datetime.strptime(ours, fmt)
    assert timedelta(0) <= gap < timedelta(seconds=1)  # the same clock, read just after

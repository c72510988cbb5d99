"""The Docker image and a 3-container farm, end to end: runs tests/docker/run.sh.

Opt-in, because it builds images and takes minutes: it runs only with
LB_DOCKER_TESTS=1 and a Docker engine that answers `docker info`, and is
skipped with the reason otherwise. The script's own checks are the test
(sessions stick across entry containers, `docker stop` drains with no failed
request, `docker kill` is detected and the sessions re-homed); this passes only
when the script exits 0 and reports PASSED.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "docker" / "run.sh"
DEFAULT_TIMEOUT = 1200  # the script's own bound for the whole run (LB_DOCKER_TIMEOUT)

pytestmark = pytest.mark.docker


def _unavailable() -> str | None:
    """Why the test cannot run here, or None."""
    if os.environ.get("LB_DOCKER_TESTS") != "1":
        return "set LB_DOCKER_TESTS=1 to build the image and run the container farm (minutes)"
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 30 s"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["(no output)"]
        return f"no Docker engine: {lines[-1]}"
    return None


def test_docker_farm() -> None:
    reason = _unavailable()
    if reason is not None:
        pytest.skip(reason)
    bound = int(os.environ.get("LB_DOCKER_TIMEOUT", str(DEFAULT_TIMEOUT)))
    proc = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=bound + 90,  # the script stops itself first; this is the backstop
    )
    out = proc.stdout + proc.stderr
    if proc.returncode == 0 and proc.stdout.startswith("SKIPPED:"):
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, out[-6000:]
    assert "PASSED: docker farm" in proc.stdout, out[-6000:]
    print(next(line for line in proc.stdout.splitlines() if line.startswith("timing:")))

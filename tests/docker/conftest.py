"""Registers the `docker` marker of the Docker image tests (tests/docker/run.sh)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "docker: builds the image, runs a container farm (LB_DOCKER_TESTS=1, a Docker engine)",
    )

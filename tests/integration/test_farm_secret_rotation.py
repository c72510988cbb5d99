"""A rolling change of the farm secret on running nodes: every link stays up.

The new secret goes into the farm file with the old one in `previous_secrets`;
the nodes restart on that file one at a time, and after each restart every
entry still reaches every home, through nodes on the old and the new secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.support.farm import Farm

pytestmark = pytest.mark.integration


async def test_rolling_change_of_the_farm_secret_keeps_every_link_up(
    make_farm: Callable[..., Farm],
) -> None:
    """New secret with the old one in previous_secrets, one node at a time: links stay up."""
    farm = make_farm()
    old = farm.secret
    new = "n" + old[1:] if old[0] != "n" else "m" + old[1:]
    rolled = farm.config_text().replace(
        f'secret = "{old}"', f'secret = "{new}"\nprevious_secrets = ["{old}"]'
    )
    path = farm.workdir / "farm-rolled.toml"
    path.write_text(rolled)
    for node in farm.nodes:
        farm.node_configs[node] = path
        farm.restart(node)  # waits until every entry reaches every home
        for entry in farm.nodes:
            for home in farm.nodes:
                assert await asyncio.to_thread(farm._probe_http, entry, home), (
                    f"after rolling {node}: {entry} -> {home} fails"
                )

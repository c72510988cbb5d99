"""A test farm whose nodes have admin listeners, and a small client for them.

`AdminFarm` is `Farm` (tests.support.farm) with `admin = "127.0.0.1:PORT"`
(and `admin_token` when `token` is set) in every [[nodes]] table. `get`,
`get_json` and `post` speak to a node's admin listener with http.client, as
`lb ctl` or a scraper would.

Like tests.support.farm it must not import lb's I/O layer.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

from tests.support.farm import HOST, Farm, free_ports


@dataclass
class AdminFarm(Farm):
    """A Farm whose every node serves an admin listener on loopback."""

    token: str | None = None

    def __post_init__(self) -> None:
        self.admin_ports = dict(zip(self.nodes, free_ports(len(self.nodes)), strict=True))
        super().__post_init__()

    def config_text(self) -> str:
        text = super().config_text()
        for n in self.nodes:
            anchor = f'[[nodes]]\nname = "{n}"\n'
            extra = f'admin = "{HOST}:{self.admin_ports[n]}"\n'
            if self.token is not None:
                extra += f'admin_token = "{self.token}"\n'
            assert text.count(anchor) == 1
            text = text.replace(anchor, anchor + extra)
        return text

    def admin(self, node: str) -> tuple[str, int]:
        return (HOST, self.admin_ports[node])

    def request(
        self, node: str, method: str, path: str, token: str | None = None, timeout: float = 5.0
    ) -> tuple[int, dict[str, str], bytes]:
        token = self.token if token is None else token
        conn = http.client.HTTPConnection(*self.admin(node), timeout=timeout)
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def get(self, node: str, path: str) -> bytes:
        status, _, body = self.request(node, "GET", path)
        assert status == 200, f"GET {path} on {node}: {status} {body[:200]!r}"
        return body

    def get_json(self, node: str, path: str) -> Any:
        return json.loads(self.get(node, path))

    def load_of(self, node: str, seen_by: str) -> tuple[int, float]:
        """(`node`'s load as it says it, its load as `seen_by` heard it in PINGs); -1 unheard."""
        own = self.get_json(node, "/api/status")["load"]
        heard = self.get_json(seen_by, "/api/status")["loads"].get(node, -1)
        return own, heard

    def post(self, node: str, path: str) -> Any:
        status, _, body = self.request(node, "POST", path)
        assert status == 200, f"POST {path} on {node}: {status} {body[:200]!r}"
        return json.loads(body)


def scrape_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        if metric != name:
            continue
        found = dict(
            (k, v.strip('"'))
            for k, _, v in (p.partition("=") for p in rest.rstrip("}").split(",") if p)
        )
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


__all__ = ["AdminFarm", "scrape_value"]

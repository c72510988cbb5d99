"""SIGHUP: a new farm file taken by a running node, as far as it can be without a restart.

Nodes joining or leaving the farm (Peers.reload), `previous_secrets` (new
logins, cookies and directory keys; the directory is re-keyed when the oldest
secret left the file), the link certificates and the certificate files of
tls-terminate services (read again from the paths the node started with, so a
certificate renewed in place is served to new handshakes) apply live. A file that
changes the farm name or secret, or drops this node, is refused; changes to
services, limits or this node's own addresses are reported and wait for a
restart.

It must not restart or rebuild a driver: it hands the new keys and members to
the drivers the node already runs.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import structlog

from lb.config import FarmConfig, Limits, NodeConfig
from lb.errors import ConfigError
from lb.node.entry import Entry
from lb.node.home import Home
from lb.node.linktls import LinkTls
from lb.node.peers import Peers
from lb.node.replication import Replication
from lb.node.service import Service
from lb.routing.cookie import CookieKeyring
from lb.routing.directory import Directory, DirectoryKeys, directory_secret
from lb.routing.keyring_slot import KeyringSlot
from lb.routing.route import Router

log = structlog.get_logger("lb.node")


def restart_keys(
    old: FarmConfig, new: FarmConfig, old_me: NodeConfig, new_me: NodeConfig
) -> list[str]:
    """The keys whose change waits for a restart, as the farm file names them:
    ``services.<name>`` (changed, added or removed), ``limits.<field>``,
    ``nodes.<this node>.<field>``."""
    keys: list[str] = []
    for name in sorted(old.services.keys() | new.services.keys()):
        if old.services.get(name) != new.services.get(name):
            keys.append(f"services.{name}")
    keys += _changed_fields("limits", old.limits, new.limits)
    keys += _changed_fields(f"nodes.{new_me.name}", old_me, new_me)
    return keys


def _changed_fields(prefix: str, old: Limits | NodeConfig, new: Limits | NodeConfig) -> list[str]:
    return [
        f"{prefix}.{field.name}"
        for field in dataclasses.fields(old)
        if getattr(old, field.name) != getattr(new, field.name)
    ]


class Reloadable(Protocol):
    """What a reload reads and renews of the node (lb.node.node.Node)."""

    name: str
    farm_name: str
    config: FarmConfig
    me: NodeConfig
    link_tls: LinkTls | None
    peers: Peers
    directory: Directory
    directory_secret: bytes
    directory_keys: DirectoryKeys
    replication: Replication
    router: Router
    keyring_slot: KeyringSlot
    entry: Entry
    home: Home
    services: dict[str, Service]


def reload(node: Reloadable, config: FarmConfig) -> None:
    """Take what `config` changes that applies live; log what does not."""
    me = config.nodes.get(node.name)
    if config.name != node.farm_name or config.secret != node.config.secret or me is None:
        log.error(
            "reload_refused",
            node=node.name,
            reason="the new file changes the farm name or secret, or drops this node",
        )
        return
    waiting = restart_keys(node.config, config, node.me, me)
    if waiting:
        log.warning(
            "reload_partial",
            node=node.name,
            restart_for=waiting,
            reason="nodes joining or leaving, previous_secrets, link certificates and the "
            "certificate files of tls-terminate services apply live; restart for the other "
            "changes (services, limits, this node's addresses)",
        )
    if node.link_tls is not None:
        try:
            node.link_tls.reload()
            log.info("link_certs_reloaded", node=node.name)
        except ConfigError as exc:
            for key, message in exc.errors:
                log.error("reload_config_error", node=node.name, key=key, error=message)
    _reload_server_certs(node)
    if config.previous_secrets != node.config.previous_secrets:
        _renew_secrets(node, config)
    added, removed = node.peers.reload(config)
    node.config = dataclasses.replace(node.peers.config, previous_secrets=config.previous_secrets)
    log.info("farm_reloaded", node=node.name, joined=sorted(added), left=sorted(removed))


def _reload_server_certs(node: Reloadable) -> None:
    """Each tls-terminate service reads its certificate and key files again (as it
    started with them): new handshakes present what the files hold now."""
    for service in node.services.values():
        if service.server_tls is None:
            continue
        try:
            service.server_tls.reload()
            log.info("tls_certs_reloaded", node=node.name, service=service.name)
        except ConfigError as exc:
            for key, message in exc.errors:
                log.error("reload_config_error", node=node.name, key=key, error=message)


def _renew_secrets(node: Reloadable, config: FarmConfig) -> None:
    """previous_secrets changed: link logins, home cookies and directory keys follow."""
    node.peers.set_secrets(config.secret, config.previous_secrets)
    keyring = CookieKeyring(config.name, config.secret, config.previous_secrets)
    rekey = directory_secret(config.secret, config.previous_secrets)
    if rekey != node.directory_secret:
        # the oldest secret left the file: name sessions as a restarted node would;
        # sessions learned under the old names are learned again as they are used
        node.directory_secret = rekey
        node.directory_keys = DirectoryKeys(rekey)
        node.replication.keys = node.directory_keys
        log.warning("directory_rekeyed", node=node.name, entries=len(node.directory))
    node.router = Router(keyring, node.directory, node.directory_keys, node.router.memory)
    node.entry.router = node.router
    node.home.keyring = keyring
    node.keyring_slot.keyring = keyring
    log.info("previous_secrets_reloaded", node=node.name)


__all__ = ["Reloadable", "reload"]

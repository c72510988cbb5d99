"""The farm configuration: one TOML file describes every node of a farm.

`load_config` reads and parses the file, `parse_config` validates an already
parsed mapping, and `select_node` picks the node this process runs as.
Validation collects every problem as a (key, message) pair and raises one
ConfigError listing them all, so an operator fixes a file in one pass.

The package: `model` (the dataclasses lb.node reads, Limits with its ranges),
`spec` (key tables and the one walker that checks a TOML table against one),
`schema` (the farm file's sections and the rules across keys), `build` (the
extractor chain and TLS contexts, built the same way for checking and for
serving), `tlsfiles` (what is wrong with a certificate or key file, said per
file, and a certificate's notAfter), `cpus` (what `workers = "auto"` means on
this machine).

This package reads the config file (and the secret and PEM files it names),
a few files under /proc and /sys (CPU quota) and the LB_NODE environment
variable; it never touches sockets, never imports asyncio and never reads the
clock.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lb.config.model import (
    Address,
    ExtractorSpec,
    FarmConfig,
    Limits,
    NodeConfig,
    ServiceConfig,
    parse_address,
    unknown_node,
)
from lb.config.schema import MAX_WORKERS, MIN_SECRET_BYTES, parse_document
from lb.errors import ConfigError

__all__ = [
    "MAX_WORKERS",
    "MIN_SECRET_BYTES",
    "NODE_ENV",
    "Address",
    "ExtractorSpec",
    "FarmConfig",
    "Limits",
    "NodeConfig",
    "ServiceConfig",
    "load_config",
    "parse_address",
    "parse_config",
    "select_node",
]

NODE_ENV = "LB_NODE"


def load_config(path: str | Path) -> FarmConfig:
    """Read, parse and validate the farm file at `path`.

    An unreadable file or a TOML syntax error is reported under the file's path
    as key; the syntax error message carries the line and column.
    """
    source = str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [(source, f"cannot read the config file: {exc.strerror or exc}")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [(source, f"the config file is not valid UTF-8 (byte offset {exc.start})")]
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(source, f"invalid TOML: {exc}")]) from None
    return parse_config(data, base_dir=p.resolve().parent, source=source)


def parse_config(
    data: Mapping[str, Any], *, base_dir: Path, source: str = "<memory>"
) -> FarmConfig:
    """Validate a parsed TOML document; raise one ConfigError listing every problem.

    `base_dir` is where a relative `farm.secret_file` is looked up.
    """
    return parse_document(data, base_dir, source)


def select_node(
    config: FarmConfig, name: str | None, *, environ: Mapping[str, str] | None = None
) -> NodeConfig:
    """The node this process runs as.

    `name` (from --node) wins; else the LB_NODE environment variable; else the
    only node of a one-node farm. Anything else is a ConfigError naming the
    choices.
    """
    env = os.environ if environ is None else environ
    if name is not None:
        return config.node(name)
    from_env = env.get(NODE_ENV, "")
    if from_env:
        if from_env in config.nodes:
            return config.nodes[from_env]
        raise unknown_node(NODE_ENV, from_env, config.nodes)
    if len(config.nodes) == 1:
        return next(iter(config.nodes.values()))
    raise ConfigError(
        [
            (
                "--node",
                f"the farm has {len(config.nodes)} nodes ({', '.join(config.nodes)}); "
                f"choose one with --node NAME or the {NODE_ENV} environment variable",
            )
        ]
    )

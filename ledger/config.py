"""Data directory layout and configuration (``memledger.toml`` inside the data directory).

Configuration picks the adapter for each part (the log, each view) by name, so moving from
the embedded default to the distributed tier is a configuration change, not a code change.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.errors import InvalidRequest
from ledger.storage.file_modes import FILE_MODE, private_dir

CONFIG_NAME = "memledger.toml"
DEFAULT_CONFIG = """\
# memledger configuration. Each part names its adapter; see README "Configuration".
[log]
backend = "sqlite"          # sqlite | postgres | kafka
# partitions = 1            # partitioned ledger (sqlite, postgres): fixed when the ledger is created
# dsn = "postgresql://user@127.0.0.1:5432/memledger"     (postgres)
# bootstrap_servers = "127.0.0.1:9092"                    (kafka)
# topic = "memledger"                                     (kafka)

[views]
# vector = "embedded"       # embedded | elasticsearch
# keyword = "embedded"      # embedded (the keyword view also holds the memory records search returns)
# graph = "embedded"        # embedded | neo4j

# [extraction]              # facts from ingested messages (docs/memos.md)
# backend = "rules"         # rules | local | openai
# in_process = true         # false: only `memledger consume --extractor NAME` extracts
"""


def default_data_dir() -> Path:
    """``$MEMLEDGER_DATA`` or ``./memledger-data``."""
    return Path(os.environ.get("MEMLEDGER_DATA") or "memledger-data")


@dataclass
class Config:
    """Parsed configuration of one data directory."""

    data_dir: Path
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise InvalidRequest(f"[{name}] in {self.data_dir / CONFIG_NAME} must be a table")
        return value

    @property
    def log_backend(self) -> str:
        return str(os.environ.get("MEMLEDGER_LOG_BACKEND") or self.section("log").get("backend", "sqlite"))


def load_config(data_dir: str | Path) -> Config:
    """Read ``memledger.toml`` from ``data_dir`` (defaults when absent)."""
    d = Path(data_dir)
    path = d / CONFIG_NAME
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InvalidRequest(f"{path}: {exc}") from None
    return Config(d, raw)


def init_data_dir(data_dir: str | Path, config_text: str | None = None) -> tuple[Path, bool]:
    """Create the data directory and its config (``config_text``, e.g. the distributed-tier template,
    or the default); return (path, created). An existing directory keeps its own config."""
    if config_text is not None:
        try:
            tomllib.loads(config_text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidRequest(f"the configuration to initialise with is not valid TOML: {exc}") from None
    d = private_dir(data_dir)
    path = d / CONFIG_NAME
    if path.exists():
        if config_text is not None and path.read_text() != config_text:
            raise InvalidRequest(f"{path} already exists with another configuration; edit it instead")
        return d, False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(DEFAULT_CONFIG if config_text is None else config_text)
    return d, True


def resolve(target: str, what: str = "adapter") -> Any:
    """The object a ``"module:attribute"`` target names (adapters, factories and hooks are given
    so in the configuration); a clear ``InvalidRequest`` when it is malformed or cannot be loaded."""
    import importlib

    module, sep, attr = target.partition(":") if isinstance(target, str) else ("", "", "")
    if not sep or not module or not attr:
        raise InvalidRequest(f'{what} {target!r} must be "module:attribute"')
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):  # the named module itself is missing, not a dependency
            raise InvalidRequest(f"{what} {target!r}: no module {module!r}") from None
        raise
    except AttributeError:
        raise InvalidRequest(f"{what} {target!r}: module {module!r} has no {attr!r}") from None

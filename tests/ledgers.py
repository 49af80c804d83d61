"""Building ledgers in tests: a bare ``Ledger`` over a fresh SQLite log, or a data directory's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.api import Ledger
from ledger.backends.sqlite_log import SqliteLog
from ledger.config import init_data_dir
from ledger.factory import open_ledger


def make_ledger(path: str | Path, sealer: Any = None, synchronous: str = "OFF", **options: Any) -> Ledger:
    """A ``Ledger`` over a new SQLite log at ``path`` (``synchronous=OFF``: tests survive a process
    crash, not a power cut), with an optional stand-in ``sealer`` (its ``open`` is the opener)."""
    log = SqliteLog(Path(path), synchronous=synchronous)
    if sealer is not None:
        options.setdefault("opener", sealer.open)
    return Ledger(log, sealer=sealer, **options)


def data_ledger(directory: str | Path) -> Ledger:
    """The ledger of a freshly initialised data directory (key store, views and all, as the CLI has)."""
    d, _ = init_data_dir(directory)
    return open_ledger(d)

"""An append-only JSON-lines file of numbered records (signed checkpoints), numbered from 1.

One JSON object per line, appended under an exclusive file lock and fsynced, so concurrent
writers take turns and a record, once appended, survives a crash. Subclasses say how a line
becomes a record (``parse``) and what the records are called in errors (``what``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import orjson

from ledger.errors import LedgerError, NotFound
from ledger.storage.file_modes import private_dir


class Numbered(Protocol):
    """A record with a sequence number that serialises to a JSON object."""

    @property
    def seq(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Numbered)


class NumberedJsonLines(Generic[R]):
    """The records of ``path``, oldest first; ``append`` numbers the next one."""

    what = "record"  # the records' name in errors ("no checkpoint #3")
    error: type[LedgerError] = LedgerError  # raised for a damaged line

    def __init__(self, path: Path):
        self.path = path

    def parse(self, d: dict[str, Any]) -> R:
        """The record of one line's JSON object."""
        raise NotImplementedError

    def all(self) -> list[R]:
        """Every stored record, oldest first."""
        if not self.path.exists():
            return []
        out: list[R] = []
        for n, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                d = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise self.error(f"{self.path} line {n} is not valid JSON") from None
            if not isinstance(d, dict):
                raise self.error(f"{self.path} line {n} is not a JSON object")
            out.append(self.parse(d))
        return out

    def get(self, seq: int) -> R:
        """Record number ``seq``."""
        stored = self.all()
        for record in stored:
            if record.seq == seq:
                return record
        raise NotFound(f"no {self.what} #{seq} (there are {len(stored)})")

    def any_stored(self) -> bool:
        """True when the file holds anything (without parsing it)."""
        return self.path.exists() and self.path.stat().st_size > 0

    def append(self, make: Callable[[int], R]) -> R:
        """Append ``make(next_seq)`` under an exclusive lock (concurrent writers take turns)."""
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            existing = self.all()
            record = make(existing[-1].seq + 1 if existing else 1)
            os.write(fd, orjson.dumps(record.to_dict()) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        return record

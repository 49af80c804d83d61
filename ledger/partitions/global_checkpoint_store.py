"""Append-only file of global checkpoints (``<data>/global-checkpoints.jsonl``), numbered from 1.

One JSON object per line, appended under an exclusive file lock and fsynced, as the single-log
``CheckpointStore`` keeps ``checkpoints.jsonl``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import orjson

from ledger.errors import NotFound
from ledger.governance.checkpoints import CheckpointError
from ledger.partitions.global_checkpoint import GlobalCheckpoint
from ledger.storage.file_modes import private_dir

STORE_NAME = "global-checkpoints.jsonl"


class GlobalCheckpointStore:
    """The stored global checkpoints of one ledger."""

    def __init__(self, path: Path):
        self.path = path

    def all(self) -> list[GlobalCheckpoint]:
        """Every stored checkpoint, oldest first."""
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                d = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise CheckpointError(f"{self.path} line {n} is not valid JSON") from None
            if not isinstance(d, dict):
                raise CheckpointError(f"{self.path} line {n} is not a JSON object")
            out.append(GlobalCheckpoint.from_dict(d))
        return out

    def get(self, seq: int) -> GlobalCheckpoint:
        """Checkpoint number ``seq``."""
        stored = self.all()
        for cp in stored:
            if cp.seq == seq:
                return cp
        raise NotFound(f"no global checkpoint #{seq} (there are {len(stored)})")

    def append(self, make: Callable[[int], GlobalCheckpoint]) -> GlobalCheckpoint:
        """Append ``make(next_seq)`` under an exclusive lock (concurrent writers take turns)."""
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            existing = self.all()
            cp = make(existing[-1].seq + 1 if existing else 1)
            os.write(fd, orjson.dumps(cp.to_dict()) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        return cp

"""Append-only file of global checkpoints (``<data>/global-checkpoints.jsonl``), numbered from 1.

One JSON object per line, appended under an exclusive file lock and fsynced, as the single-log
``CheckpointStore`` keeps ``checkpoints.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.governance.checkpoints import CheckpointError
from ledger.governance.pg_checkpoints import PostgresRows
from ledger.partitions.global_checkpoint import GlobalCheckpoint
from ledger.storage.numbered_jsonl import NumberedJsonLines

STORE_NAME = "global-checkpoints.jsonl"


class GlobalCheckpointStore(NumberedJsonLines[GlobalCheckpoint]):
    """The stored global checkpoints of one ledger."""

    what = "global checkpoint"
    error = CheckpointError

    def parse(self, d: dict[str, Any]) -> GlobalCheckpoint:
        return GlobalCheckpoint.from_dict(d)


class PostgresGlobalCheckpointStore(PostgresRows, GlobalCheckpointStore):
    """The global checkpoints of a PostgreSQL partitioned ledger with ``[keys] backend = "postgres"``,
    in ``<schema of partition 0>.global_checkpoints``: every app server lists, verifies and extends
    the same ones."""

    def __init__(self, log: Any):
        GlobalCheckpointStore.__init__(self, Path(f"postgresql:{log.schema}.global_checkpoints"))
        self._on(log, "global_checkpoints")

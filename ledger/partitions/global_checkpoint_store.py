"""Append-only file of global checkpoints (``<data>/global-checkpoints.jsonl``), numbered from 1.

One JSON object per line, appended under an exclusive file lock and fsynced, as the single-log
``CheckpointStore`` keeps ``checkpoints.jsonl``.
"""

from __future__ import annotations

from typing import Any

from ledger.governance.checkpoints import CheckpointError
from ledger.partitions.global_checkpoint import GlobalCheckpoint
from ledger.storage.numbered_jsonl import NumberedJsonLines

STORE_NAME = "global-checkpoints.jsonl"


class GlobalCheckpointStore(NumberedJsonLines[GlobalCheckpoint]):
    """The stored global checkpoints of one ledger."""

    what = "global checkpoint"
    error = CheckpointError

    def parse(self, d: dict[str, Any]) -> GlobalCheckpoint:
        return GlobalCheckpoint.from_dict(d)

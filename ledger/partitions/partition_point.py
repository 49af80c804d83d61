"""As-of points that name every partition at once: a partition vector or a signed global checkpoint.

Besides an offset (of one partition) and an ISO-8601 time (each partition's cut at that stamp), an
``as_of`` on a partitioned ledger may be

- a ``PartitionVector``: a tuple or list of one offset per partition, or the same as a string of
  comma-separated offsets (``"12,-1,7,3"``);
- ``"checkpoint:N"``: global checkpoint number N (``ledger.partitions.global_checkpoints``), whose
  partition sizes minus one are the vector, so reads see exactly what the checkpoint signed.

Each partition then reads as of its own entry.
"""

from __future__ import annotations

from typing import Any

from ledger.config import Config
from ledger.errors import InvalidRequest
from ledger.partitions.as_of import check_vector
from ledger.partitions.base import PartitionedLog, PartitionVector

CHECKPOINT_PREFIX = "checkpoint:"


def vector_of(plog: PartitionedLog, config: Config | None, as_of: Any) -> PartitionVector | None:
    """The partition vector ``as_of`` names (checked against the ledger's heads), or None when it is
    an offset, a time or absent."""
    if isinstance(as_of, tuple | list):
        return check_vector(plog, tuple(as_of))
    if not isinstance(as_of, str):
        return None
    text = as_of.strip()
    if text.startswith(CHECKPOINT_PREFIX):
        return check_vector(plog, _checkpoint_vector(plog, config, text[len(CHECKPOINT_PREFIX) :]))
    if "," in text:
        try:
            vector = tuple(int(x) for x in text.split(","))
        except ValueError:
            raise InvalidRequest(f"as-of {as_of!r} is not a vector of comma-separated offsets") from None
        return check_vector(plog, vector)
    return None


def _checkpoint_vector(plog: PartitionedLog, config: Config | None, seq_text: str) -> PartitionVector:
    from ledger.partitions.global_checkpoints import GlobalCheckpoints

    if config is None:
        raise InvalidRequest("an as-of global checkpoint needs the ledger's data directory")
    try:
        seq = int(seq_text)
    except ValueError:
        raise InvalidRequest(f"{CHECKPOINT_PREFIX}{seq_text} does not name a global checkpoint number") from None
    cp = GlobalCheckpoints.for_config(config, plog).get(seq)
    return tuple(h.size - 1 for h in cp.heads)

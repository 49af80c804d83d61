"""Opening the ledger of the data directory named on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.api import Ledger
from ledger.config import CONFIG_NAME
from ledger.errors import InvalidRequest

if TYPE_CHECKING:
    from ledger.partitions.partitioned_ledger import PartitionedLedger


def open_cli_ledger(args: argparse.Namespace) -> Ledger:
    """The ledger at ``--data``; a clear error when the directory was never initialised."""
    from ledger.factory import open_ledger

    data = Path(args.data)
    if not (data / CONFIG_NAME).exists():
        raise InvalidRequest(f"{data} is not a memledger data directory; run: memledger --data {data} init")
    return open_ledger(data)


def partitions_of(args: argparse.Namespace) -> int:
    """How many partitions the ledger at ``--data`` has (``[log] partitions``; 1 when unset)."""
    from ledger.config import load_config
    from ledger.partitions.settings import partition_count

    data = Path(args.data)
    if not (data / CONFIG_NAME).exists():
        raise InvalidRequest(f"{data} is not a memledger data directory; run: memledger --data {data} init")
    return partition_count(load_config(data))


def open_cli_partitioned(args: argparse.Namespace) -> PartitionedLedger:
    """The memory API over the partitioned ledger at ``--data`` (``--branch`` is refused: branches
    fork a ledger of one partition)."""
    from ledger.factory import open_partitioned_memory

    branch = getattr(args, "branch", None)
    if branch not in (None, "main"):
        raise InvalidRequest("branches fork a ledger of one partition; this ledger is partitioned ([log] partitions)")
    return open_partitioned_memory(Path(args.data))


def memory_api_for(args: argparse.Namespace) -> Ledger | PartitionedLedger:
    """What the memory commands run on: the ledger at ``--data`` (over ``--branch`` when given), or,
    when it has several partitions, the ``PartitionedLedger`` that routes each cube and memory."""
    if partitions_of(args) > 1:
        return open_cli_partitioned(args)
    from ledger.cli.time_commands import ledger_for

    return ledger_for(args)


def with_partition(out: dict[str, Any], api: Ledger | PartitionedLedger, memory_id: str) -> dict[str, Any]:
    """``out`` with the memory's partition added when ``api`` is partitioned (its offsets are that
    partition's)."""
    if isinstance(api, Ledger):
        return out
    return {**out, "partition": api.home_of(memory_id)}


def scoped_ledger(args: argparse.Namespace, cube: str | None = None, memory_id: str | None = None) -> Ledger:
    """The ledger a command about ``memory_id`` (or ``cube``) reads: the ledger at ``--data`` (or its
    ``--branch``), or on a partitioned ledger the ``Ledger`` of that memory's (or cube's) partition,
    with ``args.as_of`` turned into that partition's point (a vector or "checkpoint:N" entry)."""
    if partitions_of(args) == 1:
        from ledger.cli.time_commands import ledger_for

        return ledger_for(args)
    pledger = open_cli_partitioned(args)
    if memory_id is not None:
        k = pledger.home_of(memory_id)
    elif cube is not None:
        k = pledger.partition_of(cube)
    else:
        raise InvalidRequest(
            f"this ledger has {pledger.count} partitions: name a cube or a memory (or, for `log`, --partition K)"
        )
    if getattr(args, "as_of", None) is not None:
        args.as_of = pledger.point(args.as_of, k)
    return pledger.ledger(k)

"""The embedded views of a partitioned ledger: one ``ViewSet`` per partition, searched together.

Partition ``k`` keeps its keyword, vector and graph views under ``<data>/partitions/p<k>/views`` and
folds only its own log, with its own checkpoints (a view as of an offset of partition ``k`` is a fold
of that partition's events up to it). A search names cubes (each lives in one partition) or none
(every partition); each partition ranks its own candidates and the hits are merged by fused score.
Scores of different partitions come from separate corpora (keyword statistics are per partition),
so the merged order is exact within a partition and approximate across them; search one cube, or
the cubes of one partition, for the single-ledger ranking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ledger.errors import InvalidRequest
from ledger.partitions.partitioned_ledger import PartitionedLedger, partition_dir
from projections.retrieval import SearchHit
from projections.view_set import ViewSet


class PartitionedViews:
    """A ``ViewSet`` per partition of ``pledger`` (see the module docstring)."""

    def __init__(
        self, pledger: PartitionedLedger, data_dir: str | Path | None = None, kinds: Iterable[str] | None = None
    ):
        config = pledger.config
        root = Path(data_dir) if data_dir is not None else (config.data_dir if config is not None else None)
        if root is None:
            raise InvalidRequest("the views of a partitioned ledger need a data directory")
        self.pledger = pledger
        wanted = list(kinds) if kinds is not None else None
        self.sets: list[ViewSet] = []
        try:
            for k in range(pledger.count):
                self.sets.append(ViewSet.open(pledger.ledger(k), partition_dir(root, k), kinds=wanted))
        except BaseException:
            self.close()
            raise

    def catch_up(self) -> list[dict[str, int]]:
        """Fold each partition's new events into its views; each view's checkpoint, by partition."""
        return [vs.catch_up() for vs in self.sets]

    def rebuild(self, kinds: Sequence[str] | None = None) -> list[dict[str, int]]:
        """Drop every partition's views (or those of ``kinds``) and fold each partition's log again."""
        return [vs.rebuild(kinds=kinds) for vs in self.sets]

    def status(self) -> list[dict[str, int]]:
        """Each partition's view checkpoints, by partition."""
        return [vs.status() for vs in self.sets]

    def check(self) -> list[dict[str, str]]:
        """Each partition's damaged views (rebuilt from its log), by partition."""
        return [dict(vs.check()) for vs in self.sets]

    def search(
        self,
        query: str,
        cube: str | Sequence[str] | None = None,
        k: int = 10,
        as_of: int | str | None = None,
        **options: Any,
    ) -> list[SearchHit]:
        """The ``k`` best hits over the named cubes (or every cube), each partition searched with
        ``ViewSet.search`` (same options); an integer ``as_of`` is an offset of one partition, so
        it needs cubes of one partition (an ISO-8601 time, a partition vector or "checkpoint:N"
        reaches every partition)."""
        cubes = [cube] if isinstance(cube, str) else (list(cube) if cube is not None else None)
        targets = self.pledger.cubes_by_partition(cubes, as_of)
        hits: list[SearchHit] = []
        for index, part_cubes in sorted(targets.items()):
            hits += self.sets[index].search(query, part_cubes, k, self.pledger.point(as_of, index), **options)
        hits.sort(key=lambda h: (-h.score, h.memory_id))
        return hits[:k]

    def close(self) -> None:
        """Close every partition's views."""
        for vs in self.sets:
            vs.close()

    def __enter__(self) -> PartitionedViews:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""``LogGuard``: notices a shared log that was reset, truncated or replaced under a data directory.

A Kafka broker that lost its data, or a PostgreSQL schema that was dropped and re-created, looks to
a new process like a fresh, empty ledger: without a check, it would start writing at offset 0 and a
view whose checkpoint is ahead of the log would silently skip the new events. The guard keeps, in
the data directory, the last (offset, hash) that this directory saw in the log (``log.seen``,
written by appends and consumers), and also knows the newest signed checkpoint. Before writes (the
first one, then at most every ``recheck_every`` seconds) and before a consumer applies a batch, it
checks that the log still holds an event at each remembered offset with the remembered hash; if
not, it raises :class:`LogReset` and nothing is written or applied.

The watermark is deliberately local: it is evidence that does not live in the store it checks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ledger.errors import StateError

SEEN_NAME = "log.seen"


_WHAT_NOW = (
    "writes and consumers stop (restore the log; or, if this data directory now points at another ledger on "
    f"purpose, delete its {SEEN_NAME} and rebuild its views with memledger consume --rebuild)"
)


class LogReset(StateError):
    """The log no longer holds what this data directory, a view or a signed checkpoint saw: it was reset,
    truncated or replaced. Writes and consumers stop; restore the log, or start a new data directory."""


@dataclass(frozen=True, slots=True)
class SeenPoint:
    """One (offset, hash) some party saw in the log."""

    offset: int
    hash: str
    source: str


def _point_from(d: Any, source: str) -> SeenPoint | None:
    if isinstance(d, dict) and isinstance(d.get("offset"), int) and isinstance(d.get("hash"), str):
        return SeenPoint(int(d["offset"]), str(d["hash"]), source)
    return None


class LogGuard:
    """Remembers where a data directory has seen the log and refuses to go on when the log forgot it."""

    def __init__(
        self,
        data_dir: Path,
        checkpoints_path: Path | None = None,
        recheck_every: float = 5.0,
        persist_every: float = 1.0,
    ):
        self.path = Path(data_dir) / SEEN_NAME
        self.checkpoints_path = checkpoints_path
        self.recheck_every = recheck_every
        self.persist_every = persist_every
        self._seen: SeenPoint | None = None
        self._stored_offset = -1
        self._checked_at: float | None = None
        self._persisted_at = 0.0

    # -- what was seen -----------------------------------------------------------------
    def _stored(self) -> SeenPoint | None:
        try:
            point = _point_from(orjson.loads(self.path.read_bytes()), f"this data directory ({self.path})")
        except (OSError, orjson.JSONDecodeError):
            return None
        if point is not None:
            self._stored_offset = max(self._stored_offset, point.offset)
        return point

    def _checkpoint(self) -> SeenPoint | None:
        if self.checkpoints_path is None or not self.checkpoints_path.exists():
            return None
        last = None
        for line in self.checkpoints_path.read_bytes().splitlines():
            if line.strip():
                try:
                    last = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
        if not isinstance(last, dict) or not isinstance(last.get("log_size"), int) or last["log_size"] < 1:
            return None
        return _point_from(
            {"offset": last["log_size"] - 1, "hash": last.get("head_hash")}, f"signed checkpoint #{last.get('seq')}"
        )

    def points(self) -> list[SeenPoint]:
        """Every remembered point: this process's, the data directory's and the newest checkpoint's."""
        return [p for p in (self._seen, self._stored(), self._checkpoint()) if p is not None]

    # -- checks ------------------------------------------------------------------------
    def check(self, log: Any, extra: list[SeenPoint] | None = None) -> None:
        """Raise ``LogReset`` unless the log still holds every remembered point (and ``extra``)."""
        points = [*self.points(), *(extra or [])]
        self._checked_at = time.monotonic()
        if not points:
            return
        head = log.head()
        for p in sorted(points, key=lambda p: -p.offset):
            check_point(log, p, head)

    def before_append(self, log: Any) -> None:
        """The check, on the first write of this process and then at most every ``recheck_every`` s."""
        if self._checked_at is None or time.monotonic() - self._checked_at >= self.recheck_every:
            self.check(log)

    def saw(self, offset: int, hash_: str) -> None:
        """Remember that the log holds ``hash_`` at ``offset``; persisted at most every ``persist_every`` s."""
        if self._seen is None or offset >= self._seen.offset:
            self._seen = SeenPoint(offset, hash_, f"this data directory ({self.path})")
        if time.monotonic() - self._persisted_at >= self.persist_every:
            self.flush()

    def flush(self) -> None:
        """Write the newest point seen to ``log.seen`` (atomically; never moves it backwards)."""
        seen = self._seen
        if seen is None:
            return
        self._persisted_at = time.monotonic()
        if seen.offset < self._stored_offset:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{SEEN_NAME}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps({"offset": seen.offset, "hash": seen.hash}))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._stored_offset = seen.offset


def check_point(log: Any, point: SeenPoint, head: int | None = None) -> None:
    """Raise ``LogReset`` unless ``log`` holds an event at ``point.offset`` whose hash is ``point.hash``."""
    head = log.head() if head is None else head
    if point.offset > head:
        raise LogReset(
            f"the log ends at offset {head} but {point.source} saw offset {point.offset}: the log was reset or "
            f"truncated; {_WHAT_NOW}"
        )
    if not point.hash:
        return
    event = next(iter(log.read(point.offset, point.offset)), None)
    if event is None or event.hash != point.hash:
        found = "no event" if event is None else f"hash {event.hash[:16]}…"
        raise LogReset(
            f"the log holds {found} at offset {point.offset} but {point.source} saw hash {point.hash[:16]}…: "
            f"the log was replaced; {_WHAT_NOW}"
        )


def view_ahead(log: Any, checkpoint: int, view: str) -> None:
    """Raise ``LogReset`` when a view's checkpoint is beyond the log's head (it would skip new events)."""
    head = log.head()
    if checkpoint > head:
        raise LogReset(
            f"view {view!r} is at offset {checkpoint} but the log ends at {head}: the log was reset or truncated; "
            f"the consumer stops (restore the log, or rebuild the view: memledger consume --view {view} --rebuild)"
        )

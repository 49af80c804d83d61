"""Running extraction from configuration: the in-process catch-up, waiting for an ingest, the status.

``[extraction] in_process = true`` (the default) makes ``serve`` and the CLI run the configured
extractor in their own process, as they keep the views caught up; ``false`` leaves it to
``memledger consume --extractor NAME``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from ledger.errors import BackendUnavailable
from ledger.events import Event
from ledger.memos.extraction.apply import track_stream
from ledger.memos.extraction.consumer import ExtractionConsumer, checkpoint_of, pending_messages
from ledger.memos.extraction.registry import build_extractor
from ledger.memos.extraction.settings import ExtractionSettings

_LOCK = threading.Lock()  # one in-process catch-up at a time (serve's follower and a --wait)
# The main line of extraction: one checkpoint, whichever backend decides (each decision names it), so
# switching ``[extraction] backend`` goes on from where the last one stopped instead of starting over.
MAIN_TRACK = "main"
# ledger -> an offset through which no message waits (remembered by this process)
_SCANNED: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def settings_of(ledger: Any) -> ExtractionSettings:
    return ExtractionSettings.from_config(ledger.config)


def consumer_for(ledger: Any, extractor: str | None = None, track: str = MAIN_TRACK, **kw: Any) -> ExtractionConsumer:
    """A consumer of the named (default: configured) extractor on ``track`` (default: the main line)."""
    settings = settings_of(ledger)
    name = extractor or settings.backend
    return ExtractionConsumer(ledger, build_extractor(name, settings.options), settings, track=track, **kw)


def catch_up_extraction(ledger: Any, max_windows: int | None = None) -> int:
    """Run the configured extractor over pending messages, in this process, if ``in_process``.

    Cheap when nothing is pending: the offset up to which this process found no message is
    remembered per ledger, so a poll reads only the events appended since."""
    settings = settings_of(ledger)
    if not settings.in_process:
        return 0
    head = ledger.log.head()
    after = max(checkpoint_of(ledger, MAIN_TRACK), _SCANNED.get(ledger, -1))
    if pending_messages(ledger, after, head) == 0:
        _SCANNED[ledger] = head
        return 0
    with _LOCK:
        return consumer_for(ledger).catch_up(max_windows)


def status(ledger: Any, cube: str | None = None, track: str = MAIN_TRACK) -> dict[str, Any]:
    """Pending messages (of ``cube``) and the track's checkpoint."""
    settings = settings_of(ledger)
    cp = checkpoint_of(ledger, track)
    return {
        "extractor": settings.backend,
        "track": track,
        "in_process": settings.in_process,
        "checkpoint": cp,
        "pending": pending_messages(ledger, cp, cube=cube),
        "decisions": ledger.log.stream_version(track_stream(track)),
        "head": ledger.log.head(),
    }


def wait_for(ledger: Any, offsets: Sequence[int], timeout: float = 600.0, poll: float = 0.2) -> list[Event]:
    """Block until the configured extractor has decided ``offsets`` (running it here when in-process);
    return the decision events that cover them."""
    settings = settings_of(ledger)
    track = MAIN_TRACK
    last = max(offsets)
    deadline = time.monotonic() + timeout
    while checkpoint_of(ledger, track) < last:
        if settings.in_process:
            with _LOCK:
                if consumer_for(ledger).catch_up() == 0 and checkpoint_of(ledger, track) < last:
                    break  # nothing left to decide on this track (the offsets are not messages)
            continue
        if time.monotonic() > deadline:
            raise BackendUnavailable(
                f"extraction has not reached offset {last} within {timeout:g} s; the messages are stored "
                "(is `memledger consume --extractor` running?)"
            )
        time.sleep(poll)
    wanted = set(offsets)
    return [e for e in ledger.log.read_stream(track_stream(track), 1) if wanted & set(e.payload["source_offsets"])]


def describe(ledger: Any, decision: Event) -> list[dict[str, Any]]:
    """The decisions of one record with their candidates' texts (opened, while the sources' keys live)."""
    p = decision.payload
    output = p.get("output")
    if output is None and ledger.sealer is not None and isinstance(p.get("sealed"), dict):
        output = ledger.sealer.open(p["sealed"])
    cands = (output or {}).get("candidates", [])
    out = []
    for d in p["decisions"]:
        c = cands[d["candidate"]] if d["candidate"] < len(cands) else {}
        out.append({**d, "text": c.get("text"), "retracts": c.get("retracts", False), "offset": decision.offset})
    if p.get("error"):
        out.append({"kind": "ERROR", "error": p["error"], "offset": decision.offset})
    return out

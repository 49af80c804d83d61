"""Pause Python's cyclic garbage collector while a fold runs, collecting only the young generation.

A fold allocates millions of short-lived containers (events, states, rows) and keeps a large
heap of long-lived ones (caches, buffers). With the collector's default thresholds that makes
it traverse the whole heap over and over: measured at 100k memories, a quarter of a keyword
rebuild (6.4 s -> 4.8 s without it). Folds create almost no reference cycles, so during a fold
the collector only sweeps the young generation after each batch (:func:`collect_young`, a few
ms), and full collections resume when the last concurrent fold ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_active = 0
_was_enabled = False


@contextmanager
def folding() -> Iterator[None]:
    """Disable automatic collection for the duration (re-entrant and thread-safe)."""
    global _active, _was_enabled
    with _lock:
        if _active == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _was_enabled:
                gc.enable()


def collect_young() -> None:
    """Collect the youngest generation (cycles made by the batch just applied)."""
    gc.collect(0)

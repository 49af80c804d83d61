"""The search views of a running service: opened once, lazily, shared by every request; its follower
thread also runs the in-process extraction (``ledger.memos.extraction.runtime``).

Search and catch-up touch the same view files, so calls are serialised by a lock (the views'
SQLite connections are not meant to be shared mid-transaction by several threads).
"""

from __future__ import annotations

import logging
import threading

from ledger.service.state import ServiceState
from projections.view_set import ViewSet

log = logging.getLogger("memledger.service")


class SearchBackend:
    """Lazily opened ``projections.view_set.ViewSet`` plus the lock that guards it."""

    def __init__(self, state: ServiceState):
        self.state = state
        self.lock = threading.RLock()
        self._views: ViewSet | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def views(self) -> ViewSet:
        """The view set, opened on first use."""
        with self.lock:
            if self._views is None:
                self._views = ViewSet.open(self.state.ledger, self.state.views_dir or self.state.data_dir)
                for name, view in self._views.views.items():
                    self.state.views.setdefault(name, view.checkpoint)
            return self._views

    def start_follower(self, interval: float = 0.5) -> None:
        """Keep the views caught up with the log in a daemon thread (so searches rarely wait)."""
        if self._thread is not None:
            return

        def loop() -> None:
            from ledger.memos.extraction.runtime import catch_up_extraction

            while not self._stop.wait(interval):
                try:  # the in-process extractor first ([extraction] in_process), so its facts get indexed
                    catch_up_extraction(self.state.ledger)
                except Exception:  # noqa: BLE001 - keep following; the error shows as pending messages
                    log.exception("extracting facts from ingested messages failed")
                try:
                    views = self.views()
                    with self.lock:
                        views.catch_up()
                except Exception:  # noqa: BLE001 - keep following; the error shows as projection lag
                    log.exception("catching up the search views failed")

        self._thread = threading.Thread(target=loop, name="memledger-view-follower", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self.lock:
            if self._views is not None:
                self._views.close()
                self._views = None


def search_backend(state: ServiceState) -> SearchBackend:
    """The app's search backend (created on first use)."""
    backend = state.extras.get("search")
    if backend is None:
        backend = state.extras.setdefault("search", SearchBackend(state))
    return backend

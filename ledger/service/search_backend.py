"""The search views of a running service: opened once, lazily, shared by every request.

Search and catch-up touch the same view files, so calls are serialised by a lock (the views'
SQLite connections are not meant to be shared mid-transaction by several threads).
"""

from __future__ import annotations

import threading
from typing import Any

from ledger.service.state import ServiceState


class SearchBackend:
    """Lazily opened ``projections.view_set.ViewSet`` plus the lock that guards it."""

    def __init__(self, state: ServiceState):
        self.state = state
        self.lock = threading.RLock()
        self._views: Any = None

    def views(self) -> Any:
        with self.lock:
            if self._views is None:
                from projections.view_set import ViewSet

                self._views = ViewSet.open(self.state.ledger, self.state.data_dir)
                for name, view in self._views.views.items():
                    self.state.views.setdefault(name, view.checkpoint)
            return self._views

    def close(self) -> None:
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

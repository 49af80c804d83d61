"""A small per-key sliding-window limiter (bounds audit events written for anonymous floods)."""

from __future__ import annotations

import threading
import time
from collections import deque


class AuditLimiter:
    """Allows at most ``per_minute`` hits per key in any 60-second window."""

    def __init__(self, per_minute: int, max_keys: int = 10_000):
        self.per_minute = per_minute
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > self.max_keys:
                self._hits = {k: q for k, q in self._hits.items() if q and now - q[-1] < 60}
            q = self._hits.setdefault(key, deque())
            while q and now - q[0] >= 60:
                q.popleft()
            if len(q) >= self.per_minute:
                return False
            q.append(now)
            return True

"""``FileLease``: an exclusive ``flock`` on a file in the data directory (consumers on one machine)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ledger.storage.file_modes import private_dir


class FileLease:
    """An exclusive ``flock`` on ``<data_dir>/consumers/<view>.lock``; the kernel releases it when the
    holder dies, so a standby takes over at once."""

    def __init__(self, data_dir: str | Path, view: str):
        path = private_dir(Path(data_dir) / "consumers") / f"{view}.lock"
        self.description = f"file lock {path}"
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._held = False

    def poll(self) -> bool:
        if not self._held:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._held = True
            except BlockingIOError:
                return False
        return True

    def release(self) -> None:
        if self._held:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._held = False
        os.close(self._fd)

"""File modes of the data directory: private to its owner (directories 0700, files 0600).

The data directory holds plaintext (views, caches, principals' token digests, checkpoints, the
log). The CLI and the service run under a umask of 0o077 (:func:`private_umask`), which covers
every file any library creates there; the places that create files also give explicit modes
(:func:`private_dir`, :func:`private_file`), so library callers get the same. SQLite creates its
``-wal`` and ``-shm`` files with the permissions of the main database file, so a database file
created 0600 keeps its side files 0600 too. A data directory found wider than 0700 is
tightened when a ledger opens it, with a warning (:func:`tighten_data_dir`).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
PRIVATE_UMASK = 0o077

log = logging.getLogger("memledger")


def private_umask() -> int:
    """Add 0o077 to the process umask; return the previous umask (to restore it)."""
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)
    return old


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0700; an existing directory is left alone."""
    p = Path(path)
    if not p.is_dir():
        if not p.parent.is_dir():
            p.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        p.mkdir(mode=DIR_MODE, exist_ok=True)
    return p


def private_file(path: str | Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists (e.g. before SQLite opens it)."""
    p = Path(path)
    if not p.exists():
        private_dir(p.parent)
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        except FileExistsError:
            pass
    return p


def make_private(path: str | Path) -> None:
    """Set mode 0600 on a file another library wrote (e.g. an index saved by a C extension)."""
    os.chmod(path, FILE_MODE)


def tighten_data_dir(path: str | Path) -> None:
    """Remove group and other access from an existing data directory, warning when it had any."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o077:
        old = stat.S_IMODE(st.st_mode)
        try:
            os.chmod(p, old & 0o700)
        except OSError as exc:
            log.warning("data directory %s has mode %s (readable by others) and could not be tightened: %s",
                        p, oct(old), exc)
            return
        log.warning("data directory %s had mode %s; tightened to %s (its files hold plaintext)",
                    p, oct(old), oct(old & 0o700))

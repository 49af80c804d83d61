"""Private files of the data directory: owner-only modes, atomic writes, shredding.

Modes: directories 0700, files 0600.

The data directory holds plaintext (views, caches, principals' token digests, checkpoints, the
log). The CLI and the service run under a umask of 0o077 (:func:`private_umask`), which covers
every file any library creates there; the places that create files also give explicit modes
(:func:`private_dir`, :func:`private_file`), so library callers get the same. SQLite creates its
``-wal`` and ``-shm`` files with the permissions of the main database file, so a database file
created 0600 keeps its side files 0600 too. A data directory found wider than 0700 is
tightened when a ledger opens it, with a warning (:func:`tighten_data_dir`).

Writes: :func:`write_private` replaces a file atomically (temporary file unique per process and
thread, fsync, rename, fsync of the directory), so readers see the old content or the new, never a
torn file; :func:`create_private_once` creates a file only if absent, race-free across processes
(temporary file, fsync, ``link``: exactly one concurrent creator wins, e.g. for keys);
:func:`shred` overwrites a file with random bytes, fsyncs and unlinks it: the best a program can do
on a file system that does not promise in-place overwrites (copy-on-write file systems and SSD wear
levelling may keep old blocks; docs/governance.md says so).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
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


def fsync_dir(path: str | Path) -> None:
    """Make a directory entry change (create, rename, unlink) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(path: str | Path) -> Path:
    """Create ``path`` and missing parents with mode 0700, durably; existing ones are left alone."""
    p = Path(path)
    missing = [d for d in (p, *p.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=DIR_MODE, exist_ok=True)
        fsync_dir(d.parent)
    return p


def _written_temp(path: Path, data: bytes) -> Path:
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def write_private(path: str | Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600)."""
    p = Path(path)
    os.replace(_written_temp(p, data), p)
    fsync_dir(p.parent)


def create_private_once(path: str | Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` (mode 0600) unless it exists; True if this call created it.

    Race-free across processes: of several concurrent creators exactly one wins, and everyone
    then reads the winner's content.
    """
    p = Path(path)
    tmp = _written_temp(p, data)
    try:
        os.link(tmp, p)  # atomic "create if absent"
        created = True
    except FileExistsError:
        created = False
    finally:
        os.unlink(tmp)  # a second name of the inode: unlink, do not overwrite
    fsync_dir(p.parent)
    return created


def shred(path: str | Path) -> bool:
    """Overwrite a file with random bytes, fsync, unlink; False when it did not exist."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        os.write(fd, os.urandom(max(size, 1)))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fsync_dir(Path(path).parent)
    return True


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
            log.warning(
                "data directory %s has mode %s (readable by others) and could not be tightened: %s", p, oct(old), exc
            )
            return
        log.warning(
            "data directory %s had mode %s; tightened to %s (its files hold plaintext)", p, oct(old), oct(old & 0o700)
        )

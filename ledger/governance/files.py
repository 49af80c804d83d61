"""Private files: written atomically with mode 0600 in 0700 directories, and shredded.

``write_private(path, data)`` writes a temporary file (unique per process and thread), fsyncs it,
renames it into place and fsyncs the directory, so a reader sees the old content or the new, never
a torn file. ``shred(path)`` overwrites a file with random bytes, fsyncs and unlinks it: the best a
program can do on a file system that does not promise in-place overwrites (copy-on-write file
systems and SSD wear levelling may keep old blocks; docs/governance.md says so).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a directory entry change (create, rename, unlink) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0700 (existing ones are left as they are)."""
    missing = [d for d in (path, *path.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        fsync_dir(d.parent)


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600)."""
    path = Path(path)
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def shred(path: Path) -> bool:
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

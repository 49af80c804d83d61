"""``FileGroupCoordinator``: consumer-group membership and partition locks with ``flock`` (one machine).

For the embedded tier, where the members of a group run on the machine that holds the data
directory. Under ``<data>/consumers/groups/<group>/<view>/``:

- ``members/<member>.member``: one file per member, held with an exclusive ``flock`` for the
  member's lifetime, its modification time being the heartbeat. A file nobody holds belongs to a
  dead member (the kernel dropped the lock with the process, ``kill -9`` included) and is
  deleted by the next member that looks; a held file whose heartbeat is older than
  ``heartbeat_timeout`` belongs to a frozen member, which is not counted as live.
- ``p<k>.lock``: partition ``k``'s lock, an exclusive ``flock``; the file names its holder.

A frozen member cannot be fenced off here (unlike on PostgreSQL): it keeps the locks of its
partitions until it runs again or dies, and those partitions wait for it; nothing is applied twice.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
import uuid
from pathlib import Path

from ledger.errors import InvalidRequest
from ledger.storage.file_modes import private_dir

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SUFFIX = ".member"


def _check_name(what: str, value: str) -> str:
    if not _NAME.match(value):
        raise InvalidRequest(f"{what} {value!r} must match {_NAME.pattern} (it names a file)")
    return value


def _held_by_another(path: Path) -> tuple[bool, int | None]:
    """(whether some open file holds ``path``'s lock, its inode when it is free)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False, None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True, None
    else:
        return False, os.fstat(fd).st_ino
    finally:
        os.close(fd)


class FileGroupCoordinator:
    """Member files under ``flock`` with modification-time heartbeats, and one ``flock`` per partition."""

    def __init__(self, data_dir: str | Path, group: str, view: str, member: str, heartbeat_timeout: float = 3.0):
        if heartbeat_timeout <= 0:
            raise InvalidRequest(f"heartbeat_timeout must be positive, not {heartbeat_timeout}")
        base = Path(data_dir) / "consumers" / "groups" / _check_name("group", group) / _check_name("view", view)
        self.dir = private_dir(base)
        self.members_dir = private_dir(base / "members")
        self.member = _check_name("member", member)
        self.heartbeat_timeout = heartbeat_timeout
        self.description = f"file consumer group {group!r} of view {view!r} ({self.dir})"
        self._path = self.members_dir / f"{member}{SUFFIX}"
        self._fd: int | None = None
        self._locks: dict[int, int] = {}
        self._lock = threading.Lock()

    # -- membership ------------------------------------------------------------------------
    def _join(self) -> None:
        """Hold this member's file (created under a temporary name, locked, then renamed, so nobody
        ever sees it unlocked); again if a peer deleted it while this member was frozen."""
        if self._fd is not None:
            try:
                if os.stat(self._path).st_ino == os.fstat(self._fd).st_ino:
                    return
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None
        tmp = self.members_dir / f".{self.member}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(tmp, self._path)
        self._fd = fd

    def heartbeat(self) -> list[str] | None:
        """Touch this member's file, delete dead members' files, return the live members."""
        with self._lock:
            self._join()
            os.utime(self._path)
            now = time.time()
            live = [self.member]
            for path in self.members_dir.glob(f"*{SUFFIX}"):
                name = path.name[: -len(SUFFIX)]
                if name == self.member:
                    continue
                held, free_inode = _held_by_another(path)
                if not held:
                    self._remove_dead(path, free_inode)
                    continue
                try:
                    if now - path.stat().st_mtime <= self.heartbeat_timeout:
                        live.append(name)
                except FileNotFoundError:
                    continue
            return sorted(live)

    @staticmethod
    def _remove_dead(path: Path, inode: int | None) -> None:
        try:
            if inode is not None and os.stat(path).st_ino == inode:
                path.unlink()
        except FileNotFoundError:
            pass

    # -- partition locks -------------------------------------------------------------------
    def acquire(self, partition: int) -> bool:
        with self._lock:
            if partition in self._locks:
                return True
            fd = os.open(self.dir / f"p{partition}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            os.ftruncate(fd, 0)
            os.pwrite(fd, self.member.encode(), 0)  # who holds it, for lock_holders
            self._locks[partition] = fd
            return True

    def release(self, partition: int) -> None:
        with self._lock:
            fd = self._locks.pop(partition, None)
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def held(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._locks)

    def lock_holders(self) -> dict[int, str]:
        """Partition -> the member holding its lock now (a lock file nobody holds is absent)."""
        out: dict[int, str] = {}
        for path in self.dir.glob("p*.lock"):
            digits = path.name[1 : -len(".lock")]
            if not digits.isdigit():
                continue
            k = int(digits)
            with self._lock:
                mine = k in self._locks
            if mine:
                out[k] = self.member
            elif _held_by_another(path)[0]:
                out[k] = path.read_text() or "?"
        return out

    def check(self) -> bool:
        """Always True: the kernel never takes a living process's ``flock`` away."""
        return True

    def leave(self) -> None:
        """Release every partition lock and delete this member's file."""
        for k in list(self._locks):
            self.release(k)
        with self._lock:
            if self._fd is not None:
                self._remove_dead(self._path, os.fstat(self._fd).st_ino)
                os.close(self._fd)
                self._fd = None

"""Principals: the identities that call the HTTP service, each with one secret API token.

Tokens are 256-bit random strings shown once at creation. Only their SHA-256 digest is stored
(``principals.json`` in the data directory); a high-entropy token needs no slow KDF because it
cannot be guessed from a dictionary. Authentication hashes the presented token and compares it
with every stored digest in constant time. Revocation is immediate: the store re-reads the file
whenever it changes on disk, so a ``memledger principal revoke`` run beside a live server takes
effect on the very next request.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.events import now_us, us_to_iso
from ledger.rules.names import principal_problem
from ledger.storage.file_modes import write_private

PRINCIPALS_FILE = "principals.json"
TOKEN_PREFIX = "mlk_"
RESERVED_NAMES = frozenset({"anonymous", "system"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An identity known to the service."""

    name: str
    admin: bool
    created_at: str
    token_sha256: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        """The principal without its token digest (for listings)."""
        return {
            "name": self.name,
            "admin": self.admin,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.active,
        }


def token_digest(token: str) -> str:
    """SHA-256 hex digest of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_principal_name(name: str) -> str:
    """Validate a principal name: 1-100 ASCII letters, digits, ``_ . @ -`` (``ledger.rules.names``); not reserved."""
    problem = principal_problem(name)
    if problem is not None:
        raise InvalidRequest(f"invalid principal name {name!r}: {problem}")
    if name in RESERVED_NAMES:
        raise InvalidRequest(f"principal name {name!r} is reserved")
    return name


class PrincipalStore:
    """File-backed principal registry of one data directory (safe across processes)."""

    def __init__(self, data_dir: str | Path):
        self.path = Path(data_dir) / PRINCIPALS_FILE
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_name: dict[str, Principal] = {}

    # -- persistence -----------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload(self) -> dict[str, Principal]:
        stamp = self._file_stamp()
        if stamp == self._stamp and (stamp is not None or not self._by_name):
            return self._by_name
        by_name: dict[str, Principal] = {}
        if stamp is not None:
            try:
                raw = orjson.loads(self.path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise StateError(f"{self.path} is corrupt: {exc}") from None
            for item in raw.get("principals", []):
                p = Principal(**item)
                by_name[p.name] = p
        self._by_name, self._stamp = by_name, stamp
        return by_name

    def _write(self, by_name: dict[str, Principal]) -> None:
        data = orjson.dumps({"principals": [asdict(p) for p in by_name.values()]}, option=orjson.OPT_INDENT_2)
        write_private(self.path, data)
        self._stamp = None  # force a re-read (mtime granularity may hide a fast rewrite)

    @contextmanager
    def _locked_update(self) -> Iterator[dict[str, Principal]]:
        """Hold an inter-process lock around a read-modify-write of the principals file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._lock:
                self._stamp = None
                yield self._reload()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- operations ------------------------------------------------------------------------
    def create(self, name: str, admin: bool = False) -> tuple[Principal, str]:
        """Create a principal; return it and its token (the only time the token is visible)."""
        check_principal_name(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._locked_update() as by_name:
            if name in by_name:
                raise StateError(
                    f"principal {name!r} already exists"
                    + (" (revoked; names are never reused)" if not by_name[name].active else "")
                )
            p = Principal(name=name, admin=admin, created_at=us_to_iso(now_us()), token_sha256=token_digest(token))
            by_name = {**by_name, name: p}
            self._write(by_name)
        return p, token

    def revoke(self, name: str) -> Principal:
        """Revoke a principal's token; it is refused from the next request on."""
        with self._locked_update() as by_name:
            p = by_name.get(name)
            if p is None:
                raise NotFound(f"principal {name!r} does not exist")
            if not p.active:
                return p
            p = Principal(p.name, p.admin, p.created_at, p.token_sha256, us_to_iso(now_us()))
            self._write({**by_name, name: p})
        return p

    def rotate(self, name: str) -> tuple[Principal, str]:
        """Give an active principal a new token; the old one is refused from the next request on."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._locked_update() as by_name:
            p = by_name.get(name)
            if p is None:
                raise NotFound(f"principal {name!r} does not exist")
            if not p.active:
                raise StateError(f"principal {name!r} is revoked")
            p = Principal(p.name, p.admin, p.created_at, token_digest(token), None)
            self._write({**by_name, name: p})
        return p, token

    def list(self) -> list[Principal]:
        """Every principal, revoked ones included."""
        with self._lock:
            return sorted(self._reload().values(), key=lambda p: p.name)

    def get(self, name: str) -> Principal | None:
        with self._lock:
            return self._reload().get(name)

    def authenticate(self, token: str | None) -> Principal | None:
        """The active principal holding ``token``, or None. Compares digests in constant time."""
        if not token or len(token) > 512:
            return None
        digest = token_digest(token)
        with self._lock:
            principals = list(self._reload().values())
        found = None
        for p in principals:
            if hmac.compare_digest(p.token_sha256, digest):
                found = p
        return found if found is not None and found.active else None

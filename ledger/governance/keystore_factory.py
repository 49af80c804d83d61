"""Builds the configured key store and the cipher ``ledger.factory`` hands to ``Ledger``.

Configuration (``memledger.toml``)::

    [keys]
    backend = "file"               # the default; others register with register_keystore()
    # path = "/secure/volume/keys" # default: <data>/keys
    # backend = "postgres"         # with [log] backend = "postgres": keys in the log's schema, shared by
    #                              # every app server on that log (ledger/governance/pg_keys.py)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.config import Config, resolve
from ledger.errors import InvalidRequest
from ledger.governance.cipher import KeyRing
from ledger.governance.key_vault import KeyVault
from ledger.governance.keystore import FileKeyStore, KeyStore

# backend name -> "module:function" taking (config) and returning a KeyStore
KEYSTORE_BACKENDS: dict[str, str] = {
    "file": "ledger.governance.keystore_factory:file_keystore",
}


def register_keystore(name: str, target: str) -> None:
    """Register a key store factory ``"module:function"`` under ``name``."""
    KEYSTORE_BACKENDS[name] = target


def keys_dir(config: Config) -> Path:
    """Directory of key material: ``[keys] path`` or ``<data>/keys``."""
    path = config.section("keys").get("path")
    if path is None:
        return config.data_dir / "keys"
    if not isinstance(path, str) or not path:
        raise InvalidRequest("[keys] path must be a non-empty string")
    return Path(path)


def file_keystore(config: Config) -> KeyStore:
    """The file-based default: ``<keys dir>/subjects/``."""
    return FileKeyStore(keys_dir(config) / "subjects")


def open_keystore(config: Config) -> KeyStore:
    """The configured ``KeyStore``."""
    name = str(config.section("keys").get("backend", "file"))
    if name not in KEYSTORE_BACKENDS:
        raise InvalidRequest(f"unknown key store {name!r}; known: {', '.join(sorted(KEYSTORE_BACKENDS))}")
    factory: Callable[[Config], KeyStore] = resolve(KEYSTORE_BACKENDS[name], "key store")
    return factory(config)


def open_cipher(config: Config, log: Any = None) -> KeyRing:
    """The key ring of a data directory (subject keys and memory keys; used by ``ledger.factory``).
    ``[keys] backend = "postgres"`` keeps both kinds in the PostgreSQL ``log``'s schema, shared by every
    app server on that log; the others keep memory keys in ``<keys dir>/keys.sqlite``."""
    if str(config.section("keys").get("backend", "file")) == "postgres":
        from ledger.governance.pg_keys import shared_keys

        store, vault = shared_keys(config, log)
        return KeyRing(store, vault)
    return KeyRing(open_keystore(config), KeyVault(keys_dir(config) / "keys.sqlite"))

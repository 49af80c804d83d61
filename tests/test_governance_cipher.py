"""Subject keys and AES-GCM sealing: round trip, tamper detection, destruction, concurrency."""

from __future__ import annotations

import base64
import os
import threading

import pytest

from ledger.errors import InvalidRequest
from ledger.governance.cipher import KeyRing, TamperedPayload
from ledger.governance.keystore import FileKeyStore, KeyStore, KeyStoreError


@pytest.fixture
def cipher(tmp_path):
    return KeyRing(FileKeyStore(tmp_path / "keys" / "subjects"))


def test_round_trip_and_shape(cipher):
    content = {"text": "Ada's phone is 555-0199", "metadata": {"k": [1, 2.5, None, "é"]}}
    sealed = cipher.seal("ada", content)
    assert set(sealed) == {"subject", "key_id", "alg", "nonce", "ciphertext"}
    assert sealed["subject"] == "ada" and sealed["alg"] == "AES-256-GCM"
    assert b"555-0199" not in base64.b64decode(sealed["ciphertext"])
    assert cipher.open(sealed) == content
    again = cipher.seal("ada", content)
    assert again["key_id"] == sealed["key_id"]  # one key per subject
    assert again["nonce"] != sealed["nonce"] and again["ciphertext"] != sealed["ciphertext"]
    assert cipher.seal("bob", content)["key_id"] != sealed["key_id"]


def _flip_b64(s: str, at: int = 0) -> str:
    raw = bytearray(base64.b64decode(s))
    raw[at] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_tampering_fails_to_open(cipher):
    cipher.seal("bob", {"text": "x"})
    sealed = cipher.seal("ada", {"text": "secret"})
    with pytest.raises(TamperedPayload):
        cipher.open({**sealed, "ciphertext": _flip_b64(sealed["ciphertext"])})
    with pytest.raises(TamperedPayload):
        cipher.open({**sealed, "ciphertext": _flip_b64(sealed["ciphertext"], -1)})  # the tag
    with pytest.raises(TamperedPayload):
        cipher.open({**sealed, "nonce": _flip_b64(sealed["nonce"])})
    with pytest.raises(TamperedPayload):
        cipher.open({**sealed, "alg": "ROT13"})
    with pytest.raises(TamperedPayload):
        cipher.open({**sealed, "ciphertext": "not base64!"})
    with pytest.raises(TamperedPayload):
        cipher.open({k: v for k, v in sealed.items() if k != "nonce"})
    # Moved to another subject (with that subject's key id): the associated data no longer matches.
    bob_key = cipher.keystore.get("bob")
    with pytest.raises(TamperedPayload):
        cipher.open({**sealed, "subject": "bob", "key_id": bob_key.key_id})


def test_destroyed_key_opens_to_none_and_file_is_gone(cipher, tmp_path):
    sealed = cipher.seal("ada", {"text": "secret"})
    ks = cipher.keystore
    assert isinstance(ks, KeyStore)
    files = list((tmp_path / "keys" / "subjects").iterdir())
    assert len(files) == 1 and "ada" not in files[0].name
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert ks.subjects() == ["ada"]
    assert ks.destroy("ada") == sealed["key_id"]
    assert not files[0].exists() and ks.subjects() == []
    assert cipher.open(sealed) is None
    assert ks.destroy("ada") is None
    # A later key for the same subject is a different key: the old ciphertext stays unreadable.
    fresh = cipher.seal("ada", {"text": "new"})
    assert fresh["key_id"] != sealed["key_id"]
    assert cipher.open(sealed) is None and cipher.open(fresh) == {"text": "new"}


def test_destroy_in_another_process_invalidates_the_cache(tmp_path):
    a = KeyRing(FileKeyStore(tmp_path / "k"))
    b = KeyRing(FileKeyStore(tmp_path / "k"))
    sealed = a.seal("ada", {"text": "secret"})
    assert b.open(sealed) == {"text": "secret"}
    assert a.open(sealed) == {"text": "secret"}  # cached in a
    b.keystore.destroy("ada")
    assert a.open(sealed) is None


def test_concurrent_creation_yields_one_key(tmp_path):
    stores = [FileKeyStore(tmp_path / "k") for _ in range(8)]
    got: list[str] = []
    lock = threading.Lock()

    def work(ks: FileKeyStore) -> None:
        k = ks.get_or_create("ada")
        with lock:
            got.append(k.key_id)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1
    assert [p.name for p in (tmp_path / "k").iterdir() if p.name.startswith(".")] == []


def test_bad_input(cipher, tmp_path):
    with pytest.raises(InvalidRequest):
        cipher.seal("", {"text": "x"})
    with pytest.raises(InvalidRequest):
        cipher.seal("a" * 201, {"text": "x"})
    with pytest.raises(InvalidRequest):
        cipher.seal("ada", "not a dict")  # type: ignore[arg-type]
    cipher.seal("ada", {"text": "x"})
    (path,) = (tmp_path / "keys" / "subjects").iterdir()
    path.write_bytes(os.urandom(40))
    with pytest.raises(KeyStoreError):
        cipher.keystore.get("ada")

"""Principals: tokens are shown once, stored hashed, checked in constant time, revocable."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidRequest, StateError
from ledger.principals import PrincipalStore, token_digest


def test_token_is_stored_only_as_a_digest(tmp_path):
    store = PrincipalStore(tmp_path)
    p, token = store.create("alice")
    raw = (tmp_path / "principals.json").read_text()
    assert token not in raw
    assert token_digest(token) in raw
    assert p.token_sha256 == token_digest(token)
    assert len(token) > 40


def test_authenticate_and_revoke_from_another_store_instance(tmp_path):
    server_view = PrincipalStore(tmp_path)
    _, token = PrincipalStore(tmp_path).create("alice")
    assert server_view.authenticate(token).name == "alice"
    assert server_view.authenticate(token + "x") is None
    assert server_view.authenticate("") is None
    PrincipalStore(tmp_path).revoke("alice")  # e.g. the CLI, beside a running server
    assert server_view.authenticate(token) is None
    assert not server_view.get("alice").active


def test_names_are_validated_unique_and_never_reused(tmp_path):
    store = PrincipalStore(tmp_path)
    store.create("bob")
    with pytest.raises(StateError):
        store.create("bob")
    store.revoke("bob")
    with pytest.raises(StateError, match="never reused"):
        store.create("bob")
    for bad in ("", "anonymous", "a b", "_x", "x" * 101, "é"):
        with pytest.raises(InvalidRequest):
            store.create(bad)


def test_tokens_differ_and_admin_flag_is_kept(tmp_path):
    store = PrincipalStore(tmp_path)
    a, ta = store.create("a", admin=True)
    b, tb = store.create("b")
    assert ta != tb
    assert store.authenticate(ta).admin and not store.authenticate(tb).admin
    assert [p.name for p in store.list()] == ["a", "b"]


def test_rotate_replaces_the_token(tmp_path):
    store = PrincipalStore(tmp_path)
    _, old = store.create("carol")
    p, new = store.rotate("carol")
    assert new != old and store.authenticate(old) is None and store.authenticate(new).name == "carol"
    store.revoke("carol")
    with pytest.raises(StateError):
        store.rotate("carol")

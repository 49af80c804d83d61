"""Regression tests of issue 11 ("Trust holes") item 16: one name grammar, finite metadata, no blank texts.

The core (``Ledger``, branches, principals, data subjects), the CLI and the HTTP API (a real
``memledger serve``) all refuse the same names with a one-line error naming the rule broken, and
write nothing. The grammar is one regular expression, published as the OpenAPI ``pattern``.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidRequest
from tests.cli_helpers import init_data, run
from tests.live_server import live_server  # noqa: F401

VALID = [
    "c",
    "alice",
    "c1",
    "tour",
    "zzz",
    "cube-1",
    "x:y@z.w-v_u",
    "2026",
    "Москва",
    "東京tokyo",
    "ひらがなカタカナ漢字",
    "한국어漢字",
    "café",
    "Ελλάδα",
]
# name -> a word of the rule the error must name
INVALID = {
    "..": "start with a letter",
    ".": "start with a letter",
    ".x": "start with a letter",
    "_system": "start with a letter",
    "-a": "start with a letter",
    "../etc": "path separator",
    "a/../b": "path separator",
    "a/b": "path separator",
    "a\\b": "path separator",
    "alic\u0430": "mixes scripts",  # Latin "alic" + Cyrillic "а"
    "p\u0430ypal": "mixes scripts",
    "\u0391lpha": "mixes scripts",  # Cyrillic а / Greek Α among Latin letters
    "a b": "whitespace",
    "tab\there": "whitespace",
    "new\nline": "whitespace",
    "\u200b\u200b": "format character",
    "zero\u200bwidth": "format character",
    "bidi\u202eevil": "format character",
    "ﬁle": "NFKC",
    "e\u0301": "NFKC",
    "Ⅸ": "NFKC",
    "ｆｕｌｌ": "NFKC",
    "ab\u0301": "combining mark",
    "semi;colon": "not a name character",
    "quote'd": "not a name character",
    "": "1-200 characters",
    "x" * 201: "1-200 characters",
}


@pytest.fixture
def ledger(data_dir_ledger):
    """These tests need the data directory's key store and principals (tmp_path/data)."""
    return data_dir_ledger


def _refused(ledger, call, rule: str) -> str:
    head = ledger.head()
    with pytest.raises(InvalidRequest) as info:
        call()
    message = str(info.value)
    assert rule in message and "\n" not in message, message
    assert ledger.head() == head, "a refused request wrote events"
    return message


def test_item16_cube_names_follow_one_grammar_in_the_core(ledger):
    for name, rule in INVALID.items():
        _refused(ledger, lambda name=name: ledger.add(name, "text", actor="a"), rule)
        _refused(ledger, lambda name=name: ledger.create_cube(name, owner="a"), rule)
    for name in VALID:
        assert ledger.add(name, "text", actor="a").offset >= 0


def test_item16_branch_principal_and_subject_names_follow_the_grammar(ledger, tmp_path):
    from ledger.principals import PrincipalStore
    from ledger.timemachine.branches import Branches

    ledger.add("c", "text", actor="a")
    branches = Branches(ledger)
    try:
        for name, rule in INVALID.items():
            _refused(ledger, lambda name=name: branches.create(name, None, "a"), rule)
        _refused(ledger, lambda: branches.create("main", None, "a"), "main log")
        assert branches.create("feature-1", None, "a").name == "feature-1"
    finally:
        branches.close()
    for name, rule in INVALID.items():
        _refused(ledger, lambda name=name: ledger.add("c", "secret", actor="a", subject=name), rule)
    assert ledger.add("c", "secret", actor="a", subject="ada@example.com").offset > 0
    store = PrincipalStore(tmp_path / "data")
    for name in ["..", "a/b", "alic\u0430", "a b", "\u200b", "ﬁle", "Москва", "x:y", "_x", "x" * 101]:
        with pytest.raises(InvalidRequest, match="invalid principal name"):
            store.create(name)
    assert store.create("bob.smith@example.com")[0].name == "bob.smith@example.com"
    assert store.list() == [store.get("bob.smith@example.com")]


def test_item16_non_finite_metadata_is_refused_not_stored_as_null(ledger):
    w = ledger.add("c", "first", actor="a")
    other = ledger.add("c", "second", actor="a")
    for bad in (
        {"n": float("nan")},
        {"n": float("inf")},
        {"n": -float("inf")},
        {"deep": [1, {"n": float("nan")}]},
        {"n": float("1e400")},
    ):
        _refused(ledger, lambda bad=bad: ledger.add("c", "text", actor="a", metadata=bad), "finite")
        _refused(ledger, lambda bad=bad: ledger.update(w.id, "text", actor="a", metadata=bad), "finite")
        _refused(ledger, lambda bad=bad: ledger.merge([w.id, other.id], "m", actor="a", metadata=bad), "finite")
        _refused(ledger, lambda bad=bad: ledger.create_cube("d", owner="a", metadata=bad), "finite")
    ledger.add("c", "text", actor="a", metadata={"n": 1.5, "big": 10**18, "f": 1e300})
    assert ledger.get(ledger.add("c", "t", actor="a", metadata={"x": -0.0}).id).metadata == {"x": -0.0}


def test_item16_text_of_only_whitespace_and_zero_width_characters_is_blank(ledger):
    w = ledger.add("c", "first", actor="a")
    other = ledger.add("c", "second", actor="a")
    for blank in ("", " ", "\t\n", "\u200b\u200b", "\ufeff", "\u2060\u200d", "\u3000", "\u00a0\u200c", "\x00"):
        _refused(ledger, lambda blank=blank: ledger.add("c", blank, actor="a"), "blank")
        _refused(ledger, lambda blank=blank: ledger.update(w.id, blank, actor="a"), "blank")
        _refused(ledger, lambda blank=blank: ledger.merge([w.id, other.id], blank, actor="a"), "blank")
    assert ledger.get(ledger.add("c", "\u200bvisible\u200b", actor="a").id).text == "\u200bvisible\u200b"


def test_item16_cli_refuses_the_same_names(tmp_path, capsys):
    d = init_data(tmp_path, capsys)
    for name in ("../etc", "alic\u0430", "_system", "a b"):
        code, out, err = run(capsys, "--data", d, "add", "--cube", name, "--actor", "a", "text")
        assert code == 2 and err.startswith("error: invalid cube name") and err.count("\n") == 1, err
    code, _, err = run(capsys, "--data", d, "add", "--cube", "c", "--actor", "a", "\u200b\u200b")
    assert code == 2 and "blank" in err, err
    code, _, err = run(capsys, "--data", d, "branch", "create", "a/b")
    assert code == 2 and "path separator" in err, err
    code, _, err = run(capsys, "--data", d, "principal", "create", "alic\u0430")
    assert code == 2 and "invalid principal name" in err, err
    code, out, _ = run(capsys, "--data", d, "head", "--json")
    assert code == 0 and orjson.loads(out)["offset"] == -1, out  # nothing was written


def test_item16_http_refuses_names_non_finite_numbers_and_blank_texts(live_server):  # noqa: F811
    s = live_server
    h = {**s.h("alice"), "Content-Type": "application/json"}
    with s.client() as c:
        assert c.post("/v1/cubes", json={"cube": "c"}, headers=h).status_code == 201
        head = c.get("/v1/head", headers=h).json()["offset"]

        def refused(r: httpx.Response, rule: str) -> None:
            assert r.status_code == 422, (r.status_code, r.text)
            assert rule in r.text, r.text
            assert c.get("/v1/head", headers=h).json()["offset"] == head, f"{r.text} wrote events"

        for name, rule in INVALID.items():
            rule = "at most 200 characters" if len(name) > 200 else rule
            if name:
                refused(c.post("/v1/cubes", json={"cube": name}, headers=h), rule)
                refused(c.post("/v1/memories", json={"cube": name, "text": "t"}, headers=h), rule)
                refused(c.post("/v1/branches", json={"name": name}, headers=h), rule)
                refused(c.post("/v1/memories", json={"cube": "c", "text": "t", "subject": name}, headers=h), rule)
        for raw in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b'[1, {"x": NaN}]'):
            body = b'{"cube": "c", "text": "t", "metadata": {"n": ' + raw + b"}}"
            refused(c.post("/v1/memories", content=body, headers=h), "finite")
            refused(c.post("/v1/cubes", content=b'{"cube": "d", "metadata": {"n": ' + raw + b"}}", headers=h), "finite")
        for blank in ("\u200b\u200b", " \t", "\ufeff"):
            refused(c.post("/v1/memories", json={"cube": "c", "text": blank}, headers=h), "blank")
            refused(c.get("/v1/search", params={"q": blank}, headers=h), "blank")
        # names in paths: an unaddressable or mixed-script name is refused before any lookup (nothing audited)
        for path in ("/v1/cubes/%2E%2E", "/v1/cubes/alic%D0%B0", "/v1/cubes/a%20b/memories"):
            refused(c.get(path, headers=h), "not a valid name")
        refused(c.post("/v1/principals", json={"name": "alic\u0430"}, headers=s.h("root")), "principal")
        for raw in (b"9007199254740992", b"1e20", b"15745262026592234500853334016"):
            body = b'{"cube": "c", "text": "t", "metadata": {"n": ' + raw + b"}}"
            refused(c.post("/v1/memories", content=body, headers=h), "less than or equal to 9007199254740991")
        for name in VALID:
            assert c.post("/v1/cubes", json={"cube": name}, headers=h).status_code in (201, 409), name
        body = b'{"cube": "c", "text": "t", "metadata": {"n": 9007199254740991, "f": -1.5e15, "l": [true, null]}}'
        stored = c.post("/v1/memories", content=body, headers=h)
        assert stored.status_code == 201, stored.text


def test_item16_schema_pattern_is_the_validator(live_server):  # noqa: F811
    from ledger.rules.names import NAME_PATTERN

    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    cube = spec["components"]["schemas"]["CubeCreate"]["properties"]["cube"]
    assert cube["pattern"] == NAME_PATTERN and cube["maxLength"] == 200
    params = spec["paths"]["/v1/cubes/{cube}"]["get"]["parameters"]
    assert next(p for p in params if p["name"] == "cube")["schema"]["pattern"] == NAME_PATTERN


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_item16_every_name_the_pattern_admits_is_valid_and_the_rust_regex_agrees(data):
    from pydantic import Field, TypeAdapter, ValidationError

    from ledger.rules.names import NAME_PATTERN, PUNCTUATION, SCRIPT_SETS, name_problem, name_regex, scripts_of

    rust = TypeAdapter(Annotated[str, Field(pattern=NAME_PATTERN)])
    name = data.draw(
        st.one_of(
            st.from_regex(name_regex(), fullmatch=True), st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
        )
    )
    name = name[:200]
    ok = name_problem(name) is None
    try:
        rust.validate_python(name)
        rust_ok = True
    except ValidationError:
        rust_ok = False
    assert ok == rust_ok, (name, name_problem(name))
    if ok:
        assert unicodedata.normalize("NFKC", name) == name
        assert name[0].isalnum() and not any(ch in name for ch in "/\\")
        assert not any(unicodedata.category(ch)[0] in "ZCM" for ch in name)
        letters = [set(scripts_of(ch)) for ch in name if not ("0" <= ch <= "9" or ch in PUNCTUATION)]
        assert any(all(s & ls for ls in letters) for s in SCRIPT_SETS.values())


def test_item16_unicode_tables_match_this_pythons_unicodedata():
    pytest.importorskip("regex")
    from ledger.rules import unicode_gen, unicode_tables

    if unicodedata.unidata_version != unicode_tables.UNIDATA_VERSION:
        pytest.skip(
            f"tables derived with Unicode {unicode_tables.UNIDATA_VERSION}, "
            f"this Python has {unicodedata.unidata_version}"
        )
    assert unicode_gen.blank_ranges() == list(unicode_tables.BLANK)
    derived = unicode_gen.letters_by_script()
    assert derived.keys() == unicode_tables.LETTERS.keys()
    assert all(derived[k] == list(v) for k, v in unicode_tables.LETTERS.items())

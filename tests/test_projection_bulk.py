"""The keyword view's bulk mode (rebuild from zero): same content and rankings as an incremental fold."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import events as ev
from ledger.api import Ledger
from ledger.backends.sqlite_log import SqliteLog
from ledger.events import NewEvent
from projections.base import catch_up, rebuild
from projections.text_view import KeywordView

WORDS = ["garden", "coffee", "piano", "river", "dog", "cats", "painting", "hiking", "book", "sunrise", "music"]
QUERIES = ["garden coffee", "piano", "cats dog river", "painting music book", "sunrise hiking"]


def _ledger(d: Path, n: int = 120) -> Ledger:
    ledger = Ledger(SqliteLog(d / "log.sqlite", synchronous="OFF"))
    batch = []
    for i in range(n):
        text = f"{WORDS[i % 11]} {WORDS[(i * 7) % 11]} note {WORDS[(i * 5) % 11]} {WORDS[(i * 3) % 11]}"
        meta = {"memory_id": f"m{i}", "text": text}
        if i % 4 == 0:
            meta["subject"] = "s1"
        batch.append(NewEvent(f"c{i % 2}", ev.MEMORY_ADDED, meta, "u"))
        if i % 9 == 8:
            batch.append(NewEvent(f"c{(i - 5) % 2}", ev.MEMORY_UPDATED,
                                  {"memory_id": f"m{i - 5}", "text": text + " revised"}, "u"))
    ledger.log.append(batch)
    return ledger


def _postings(view: KeywordView) -> list[tuple]:
    return view.conn().execute(
        "SELECT t.term, x.memory_id, p.tf, p.dl, p.cube, p.t_from, p.t_to FROM postings p "
        "JOIN terms t ON t.term_id = p.term_id JOIN texts x ON x.text_id = p.text_id ORDER BY 1, 2, 6").fetchall()


def _searches(view: KeywordView, as_of: int | None) -> list:
    return [view.keyword_search(q, 7, cubes, as_of) for q in QUERIES for cubes in (None, ["c1"])]


def _in_bulk(view: KeywordView) -> bool:
    return view.conn().execute("SELECT 1 FROM meta WHERE key = 'bulk'").fetchone() is not None


def test_bulk_fold_equals_incremental_fold_and_merges_lazily(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    incremental = KeywordView(tmp_path / "inc.sqlite")
    catch_up(ledger.events, incremental, batch_size=11)
    bulk = KeywordView(tmp_path / "bulk.sqlite")
    bulk.reset()
    catch_up(ledger.events, bulk, batch_size=11)
    assert _in_bulk(bulk)  # nothing read yet: the postings wait in text order
    mid = ledger.head() // 2
    assert _searches(bulk, None) == _searches(incremental, None)  # the first read merges
    assert not _in_bulk(bulk)
    assert _searches(bulk, mid) == _searches(incremental, mid)
    assert _postings(bulk) == _postings(incremental)
    # after the merge, the view keeps folding incrementally
    ledger.log.append([NewEvent("c0", ev.MEMORY_ADDED, {"memory_id": "late", "text": "garden garden coffee"}, "u")])
    for v in (bulk, incremental):
        catch_up(ledger.events, v)
    fresh = KeywordView(tmp_path / "fresh.sqlite")  # no cached document frequencies
    catch_up(ledger.events, fresh)
    assert _searches(bulk, None) == _searches(incremental, None) == _searches(fresh, None)
    assert _postings(bulk) == _postings(incremental)


def test_cached_document_frequencies_follow_new_events_and_erasure(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    view = KeywordView(tmp_path / "kw.sqlite")
    catch_up(ledger.events, view)
    before = _searches(view, None)
    stats = view.corpus_stats(["garden", "coffee"], None, None)
    ledger.log.append([NewEvent("c0", ev.MEMORY_ADDED, {"memory_id": f"x{i}", "text": "garden garden"}, "u")
                       for i in range(30)])
    ledger.log.append([NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": "s1"}, "u")])
    catch_up(ledger.events, view)
    fresh = KeywordView(tmp_path / "fresh.sqlite")
    catch_up(ledger.events, fresh)
    assert view.corpus_stats(["garden", "coffee"], None, None) == fresh.corpus_stats(["garden", "coffee"], None, None)
    assert view.corpus_stats(["garden"], None, None).df["garden"] > stats.df["garden"]
    assert _searches(view, None) == _searches(fresh, None) != before
    for at in (40, 80):
        assert view.corpus_stats(["garden", "coffee"], ["c0"], at, max_df=0.5) == fresh.corpus_stats(
            ["garden", "coffee"], ["c0"], at, max_df=0.5)
        assert _searches(view, at) == _searches(fresh, at)


def test_erasure_during_bulk_fold(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.log.append([NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": "s1"}, "u")])
    ledger.log.append([NewEvent("c0", ev.MEMORY_ADDED, {"memory_id": "after", "text": "piano river"}, "u")])
    incremental = KeywordView(tmp_path / "inc.sqlite")
    catch_up(ledger.events, incremental, batch_size=13)
    rebuilt = KeywordView(tmp_path / "bulk.sqlite")
    rebuild(ledger.events, rebuilt)
    assert not _in_bulk(rebuilt)
    assert _postings(rebuilt) == _postings(incremental)
    assert _searches(rebuilt, None) == _searches(incremental, None)
    assert all(not m.startswith("m") or int(m[1:]) % 4 for hits in _searches(rebuilt, None) for m, _ in hits)


def test_failure_mid_rebuild_resumes_to_the_same_view(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    clean = KeywordView(tmp_path / "clean.sqlite")
    rebuild(ledger.events, clean)

    def failing(start: int, end: int | None):
        for e in ledger.events(start, end):
            if e.offset == 70:
                raise RuntimeError("crash")
            yield e

    view = KeywordView(tmp_path / "bulk.sqlite")
    view.reset()
    with pytest.raises(RuntimeError):
        catch_up(failing, view, batch_size=10)
    assert _in_bulk(view) and 0 <= view.checkpoint() < 70
    view.close()
    reopened = KeywordView(tmp_path / "bulk.sqlite")
    catch_up(ledger.events, reopened, batch_size=17)
    assert _searches(reopened, None) == _searches(clean, None)  # merges the bulk postings
    assert _searches(reopened, 60) == _searches(clean, 60)
    assert _postings(reopened) == _postings(clean)


def test_common_term_queries_scored_from_cached_arrays_equal_sql(tmp_path: Path) -> None:
    import itertools

    ledger = _ledger(tmp_path, n=300)
    ledger.log.append([NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": "s1"}, "u")])
    ledger.log.append([NewEvent("c1", ev.MEMORY_ADDED, {"memory_id": f"y{i}", "text": "music river river"}, "u")
                       for i in range(20)])
    arrays = KeywordView(tmp_path / "kw.sqlite")
    catch_up(ledger.events, arrays)
    sql = KeywordView(tmp_path / "kw.sqlite")  # same file, SQL scoring only
    for v in (arrays, sql):
        v.prune_min_df = 0  # with 300 memories every word here is "common"
    arrays.hot_min_postings, sql.hot_min_postings = 0, 10**9
    words = [*WORDS, "note", "revised"]
    checked = 0
    for combo in itertools.chain(itertools.combinations(words, 1), itertools.combinations(words, 3)):
        q = " ".join(combo)
        for k, cubes, states, at in ((1, None, None, None), (5, ["c1"], ["generated"], None), (10, None, None, 150),
                                     (3, ["c0", "c1"], None, 40), (400, None, None, None)):
            a = arrays.keyword_search(q, k, cubes, at, states)
            b = sql.keyword_search(q, k, cubes, at, states)
            assert [(m, round(s, 9)) for m, s in a] == [(m, round(s, 9)) for m, s in b], (q, k, cubes, at)
            checked += bool(a)
    assert arrays._hot and not sql._hot
    assert checked > 500

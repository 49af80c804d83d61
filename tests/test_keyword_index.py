"""The keyword view's packed index: exact BM25 against a reference, batch-independent content,
erasure, compaction, crash resume, layout upgrade and readers sharing the file with a writer."""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from ledger import events as ev
from ledger.api import Ledger
from ledger.events import NewEvent
from ledger.memory_state import fold
from projections.base import catch_up, rebuild
from projections.text_analysis import terms
from projections.text_view import K1, B, KeywordView
from tests.ledgers import make_ledger

WORDS = ["garden", "coffee", "piano", "river", "dog", "cats", "painting", "hiking", "book", "sunrise", "music"]
QUERIES = ["garden coffee", "piano", "cats dog river", "painting music book", "sunrise hiking", "note revised"]


def _ledger(d: Path, n: int = 120) -> Ledger:
    ledger = make_ledger(d / "log.sqlite")
    batch = []
    for i in range(n):
        text = f"{WORDS[i % 11]} {WORDS[(i * 7) % 11]} note {WORDS[(i * 5) % 11]} {WORDS[(i * 3) % 11]} #{i}"
        payload = {"memory_id": f"m{i}", "text": text}
        if i % 4 == 0:
            payload["subject"] = "s1"
        batch.append(NewEvent(f"c{i % 2}", ev.MEMORY_ADDED, payload, "u"))
        if i % 9 == 8:
            batch.append(
                NewEvent(
                    f"c{(i - 5) % 2}", ev.MEMORY_UPDATED, {"memory_id": f"m{i - 5}", "text": text + " revised"}, "u"
                )
            )
        if i % 13 == 12:
            batch.append(
                NewEvent(
                    f"c{(i - 2) % 2}",
                    ev.MEMORY_STATE_CHANGED,
                    {"memory_id": f"m{i - 2}", "from": "generated", "to": "archived"},
                    "u",
                )
            )
        if i % 17 == 16:
            batch.append(
                NewEvent(
                    f"c{(i - 3) % 2}",
                    ev.MEMORY_RESTORED,
                    {"memory_id": f"m{i - 3}", "to_offset": -1, "exists": False},
                    "u",
                )
            )
    ledger.log.append(batch)
    return ledger


def _searches(view: KeywordView, as_of: int | None) -> list:
    return [view.keyword_search(q, 7, cubes, as_of) for q in QUERIES for cubes in (None, ["c1"])]


def reference(
    ledger: Ledger, query: str, k: int, cubes: list[str] | None, at: int, states: list[str] | None = None
) -> list[tuple[str, float]]:
    """BM25 exactly as specified, from a fold of events 0..at (no index involved)."""
    forgotten = {e.payload["subject"] for e in ledger.events() if e.type == ev.SUBJECT_FORGOTTEN}
    docs = {
        m: s
        for m, s in fold(ledger.events(0, at)).items()
        if s.exists and s.text is not None and s.subject not in forgotten and (cubes is None or s.cube in cubes)
    }
    tfs = {m: Counter(terms(s.text or "")) for m, s in docs.items()}
    n = len(docs)
    if not n:
        return []
    avgdl = sum(sum(tf.values()) for tf in tfs.values()) / n
    qterms = list(dict.fromkeys(terms(query)))
    df = {t: sum(1 for tf in tfs.values() if t in tf) for t in qterms}
    out = []
    for m, tf in tfs.items():
        if states is not None and docs[m].state not in states:
            continue
        score, hit = 0.0, False
        for t in qterms:
            if tf.get(t):
                hit = True
                w = math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5))
                dl = sum(tf.values())
                score += w * tf[t] * (K1 + 1) / (tf[t] + K1 * (1 - B + B * dl / avgdl))
        if hit:
            out.append((m, score))
    out.sort(key=lambda h: (-h[1], h[0]))
    return out[:k]


def _rounded(hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(m, round(s, 9)) for m, s in hits]


def test_search_equals_reference_bm25_at_every_scope(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, n=150)
    ledger.log.append([NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": "s1"}, "u")])
    ledger.log.append(
        [NewEvent("c1", ev.MEMORY_ADDED, {"memory_id": f"y{i}", "text": "music river river"}, "u") for i in range(20)]
    )
    view = KeywordView(tmp_path / "kw.sqlite")
    catch_up(ledger.events, view, batch_size=37)
    head = ledger.head()
    words = [*WORDS, "note", "revised"]
    checked = 0
    for combo in itertools.chain(itertools.combinations(words, 1), itertools.combinations(words, 3)):
        q = " ".join(combo)
        for k, cubes, states, at in (
            (1, None, None, head),
            (5, ["c1"], ["generated"], head),
            (10, None, None, 90),
            (3, ["c0", "c1"], None, 40),
            (400, None, None, head),
            (4, ["c0"], None, 120),
        ):
            got = view.keyword_search(q, k, cubes, None if at == head else at, states)
            want = reference(ledger, q, k, cubes, at, states)
            assert _rounded(got) == _rounded(want), (q, k, cubes, states, at)
            checked += bool(want)
    assert checked > 900


def test_rescoring_equals_reference(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    view = KeywordView(tmp_path / "kw.sqlite")
    catch_up(ledger.events, view)
    for at in (30, 80, ledger.head()):
        for q in QUERIES:
            ranked = reference(ledger, q, 1000, None, at)
            wanted = [m for m, _ in ranked[::3]] + ["no-such-memory"]
            got = view.score_memories(terms(q), wanted, None, at)
            assert {m: round(s, 9) for m, s in got.items()} == {m: round(s, 9) for m, s in ranked[::3]}


def test_small_and_large_batches_fold_to_the_same_index(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    one = KeywordView(tmp_path / "one.sqlite")
    catch_up(ledger.events, one, batch_size=1)
    small = KeywordView(tmp_path / "small.sqlite")
    catch_up(ledger.events, small, batch_size=11)
    large = KeywordView(tmp_path / "large.sqlite")
    rebuild(ledger.events, large)
    rows = large.posting_rows()
    assert rows and one.posting_rows() == small.posting_rows() == rows
    segments = [v.conn().execute("SELECT COUNT(*) FROM postings").fetchone()[0] for v in (one, small, large)]
    assert segments[0] > segments[1] > segments[2]  # one row per term and flush
    for at in (None, 20, ledger.head() // 2):
        assert _searches(one, at) == _searches(small, at) == _searches(large, at)


def test_erasure_removes_postings_docs_and_unused_terms(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.log.append(
        [
            NewEvent(
                "c0", ev.MEMORY_ADDED, {"memory_id": "secret", "subject": "s2", "text": "quixotic zebra garden"}, "u"
            )
        ]
    )
    view = KeywordView(tmp_path / "kw.sqlite")
    catch_up(ledger.events, view, batch_size=13)
    assert [m for m, _ in view.keyword_search("quixotic", 3)] == ["secret"]
    before = _searches(view, None)
    ledger.log.append(
        [
            NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": "s1"}, "u"),
            NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": "s2"}, "u"),
            NewEvent("c0", ev.MEMORY_ADDED, {"memory_id": "after", "text": "piano river"}, "u"),
        ]
    )
    catch_up(ledger.events, view)
    assert view.keyword_search("quixotic zebra", 3) == []
    known = {t for (t,) in view.conn().execute("SELECT term FROM terms")}
    assert "quixot" not in known and "zebra" not in known and "garden" in known
    assert (
        not view.conn()
        .execute("SELECT 1 FROM docs d LEFT JOIN texts t ON t.text_id = d.text_id WHERE t.text_id IS NULL")
        .fetchall()
    )
    rebuilt = KeywordView(tmp_path / "rebuilt.sqlite")
    rebuild(ledger.events, rebuilt)
    assert view.posting_rows() == rebuilt.posting_rows()
    for at in (None, 50):
        assert _searches(view, at) == _searches(rebuilt, at)
    assert _searches(view, None) != before
    assert all(not m.startswith("m") or int(m[1:]) % 4 for hits in _searches(view, None) for m, _ in hits)


def test_failure_mid_rebuild_resumes_to_the_same_view(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    clean = KeywordView(tmp_path / "clean.sqlite")
    rebuild(ledger.events, clean)

    def failing(start: int, end: int | None):
        for e in ledger.events(start, end):
            if e.offset == 70:
                raise RuntimeError("crash")
            yield e

    view = KeywordView(tmp_path / "kw.sqlite")
    view.reset()
    with pytest.raises(RuntimeError):
        catch_up(failing, view, batch_size=10)
    assert 0 <= view.checkpoint() < 70
    view.close()
    reopened = KeywordView(tmp_path / "kw.sqlite")
    catch_up(ledger.events, reopened, batch_size=17)
    assert reopened.posting_rows() == clean.posting_rows()
    for at in (None, 60):
        assert _searches(reopened, at) == _searches(clean, at)


def test_compaction_merges_segments_and_keeps_every_answer(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    view = KeywordView(tmp_path / "kw.sqlite")
    view.compact_after, view.compact_max_segments = 40, 3
    seen = []
    for start in range(0, ledger.head() + 1, 25):  # queries between the writes keep cached lists
        catch_up(ledger.events, view, to=min(start + 24, ledger.head()), batch_size=1)
        seen.append(_searches(view, None))
    epoch = view.conn().execute("SELECT value FROM meta WHERE key = 'postings_epoch'").fetchone()
    assert epoch is not None and int(epoch[0]) >= 1  # compacted at least once
    most = view.conn().execute("SELECT MAX(c) FROM (SELECT COUNT(*) AS c FROM postings GROUP BY term_id)").fetchone()
    clean = KeywordView(tmp_path / "clean.sqlite")
    rebuild(ledger.events, clean)
    assert view.posting_rows() == clean.posting_rows()
    assert most[0] <= 3 + 40  # merged terms restart; at most one compaction interval of new segments
    for at in (None, 30, 90):
        assert _searches(view, at) == _searches(clean, at)
    assert seen[-1] == _searches(clean, None)


def test_readers_of_the_same_file_follow_the_writer(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    writer, reader = KeywordView(tmp_path / "kw.sqlite"), KeywordView(tmp_path / "kw.sqlite")
    catch_up(ledger.events, writer, to=60)
    first = _searches(reader, None)  # the reader caches lists and document columns
    catch_up(ledger.events, writer)
    fresh = KeywordView(tmp_path / "fresh.sqlite")
    catch_up(ledger.events, fresh)
    assert _searches(reader, None) == _searches(fresh, None) != first
    assert reader.corpus_stats(["garden", "coffee"], ["c0"], 50, max_df=0.5) == fresh.corpus_stats(
        ["garden", "coffee"], ["c0"], 50, max_df=0.5
    )
    ledger.log.append([NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": "s1"}, "u")])
    catch_up(ledger.events, writer)  # an erasure rewrites postings: the reader's caches must go
    catch_up(ledger.events, fresh)
    for at in (None, 40):
        assert _searches(reader, at) == _searches(fresh, at)


def test_file_of_an_older_layout_is_dropped_and_folded_again(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    path = tmp_path / "kw.sqlite"
    c = sqlite3.connect(path)
    c.executescript("""
        CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        INSERT INTO meta VALUES ('checkpoint', 99);
        CREATE TABLE postings(term_id INTEGER, text_id INTEGER, tf INTEGER, dl INTEGER, cube TEXT,
                              t_from INTEGER, t_to INTEGER, PRIMARY KEY(term_id, text_id)) WITHOUT ROWID;
        CREATE TABLE corpus(cube TEXT, offset INTEGER, n INTEGER, total INTEGER, PRIMARY KEY(cube, offset));
    """)
    c.commit()
    c.close()
    view = KeywordView(path)
    assert view.checkpoint() == -1
    assert view.conn().execute("SELECT name FROM sqlite_master WHERE name = 'corpus'").fetchone() is None
    catch_up(ledger.events, view)
    clean = KeywordView(tmp_path / "clean.sqlite")
    catch_up(ledger.events, clean)
    assert _searches(view, None) == _searches(clean, None)
    view.close()
    assert KeywordView(path).checkpoint() == ledger.head()  # the current layout is kept on reopen


def test_two_writers_of_one_file_alternate_without_losing_terms(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "log.sqlite")
    words = ["garden piano", "river dog", "zephyr quartz", "zephyr garden", "quartz river"]
    ledger.log.append(
        [
            NewEvent("c0", ev.MEMORY_ADDED, {"memory_id": f"m{i}", "text": f"{words[min(i // 5, 4)]} {i}"}, "u")
            for i in range(25)
        ]
    )
    a, b = KeywordView(tmp_path / "kw.sqlite"), KeywordView(tmp_path / "kw.sqlite")
    rebuild(ledger.events, a, to=9)  # a knows every term of the file after its own reset
    catch_up(ledger.events, b, to=14, batch_size=2)  # b adds "zephyr" and "quartz"
    catch_up(ledger.events, a, to=19, batch_size=3)  # a must look them up, not insert them again
    catch_up(ledger.events, b, batch_size=2)
    catch_up(ledger.events, a)
    clean = KeywordView(tmp_path / "clean.sqlite")
    rebuild(ledger.events, clean)
    assert a.posting_rows() == clean.posting_rows() == b.posting_rows()
    for q in ("zephyr", "quartz garden", "river"):
        for at in (None, 17):
            assert (
                a.keyword_search(q, 30, as_of=at)
                == clean.keyword_search(q, 30, as_of=at)
                == b.keyword_search(q, 30, as_of=at)
                != []
            )


def test_queries_in_threads_keep_their_answers_while_a_writer_folds(tmp_path: Path) -> None:
    import threading

    ledger = _ledger(tmp_path, n=400)
    view = KeywordView(tmp_path / "kw.sqlite")
    view.compact_after, view.compact_max_segments = 200, 2  # compactions while the readers read
    catch_up(ledger.events, view, to=150)
    clean = KeywordView(tmp_path / "clean.sqlite")
    catch_up(ledger.events, clean, to=150)
    want = {at: _searches(clean, at) for at in (60, 150)}
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for at, expected in want.items():
                got = _searches(view, at)
                if got != expected:
                    errors.append(f"as of {at}: {got} != {expected}")
                    return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        catch_up(ledger.events, view, batch_size=3)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, errors[0]
    assert int(view.conn().execute("SELECT value FROM meta WHERE key = 'postings_epoch'").fetchone()[0]) >= 1

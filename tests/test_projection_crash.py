"""Crash safety and erasure of the keyword and graph views.

* kill -9 during catch-up, restart, and the view equals a clean rebuild (exactly-once);
* ``subject.forgotten`` purges every row of the subject's memories: the text leaves every file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ledger import events as ev
from ledger.api import Ledger
from ledger.events import NewEvent
from projections.base import catch_up, rebuild
from projections.graph_view import GraphView
from projections.text_view import KeywordView
from tests.ledgers import make_ledger

ROOT = Path(__file__).resolve().parents[1]
WORDS = "river stone garden Lisbon violin harbour lantern meadow Oslo copper falcon orchard".split()


def _populate(ledger: Ledger, n: int) -> None:
    batch = []
    for i in range(n):
        text = f"{WORDS[i % 12]} {WORDS[(i * 7) % 12]} note {i} about {WORDS[(i * 5) % 12]} and Maria"
        batch.append(NewEvent(f"c{i % 3}", ev.MEMORY_ADDED, {"memory_id": f"m{i}", "text": text}, "u"))
        if i % 10 == 9:
            batch.append(
                NewEvent(f"c{i % 3}", ev.MEMORY_UPDATED, {"memory_id": f"m{i - 3}", "text": text + " v2"}, "u")
            )
            batch.append(
                NewEvent(
                    f"c{i % 3}", ev.MEMORY_LINKED, {"source": f"m{i}", "target": f"m{i - 1}", "relation": "next"}, "u"
                )
            )
    ledger.log.append(batch)


def dump(view: KeywordView | GraphView) -> dict[str, list]:
    """The logical content of a view, independent of row ids."""
    c = view.conn()
    out = {
        "checkpoint": [view.checkpoint()],
        "versions": c.execute(
            "SELECT v.memory_id, v.cube, v.state, v.valid_from, v.valid_to, v.exists_, v.subject, "
            "v.meta, v.blob, t.text, t.length FROM versions v LEFT JOIN texts t "
            "ON t.text_id = v.text_id ORDER BY v.memory_id, v.valid_from"
        ).fetchall(),
    }
    if isinstance(view, KeywordView):
        out["postings"] = view.posting_rows()
        out["terms"] = c.execute("SELECT term FROM terms ORDER BY 1").fetchall()
    else:
        out["mentions"] = c.execute(
            "SELECT e.name, v.memory_id, v.valid_from FROM mentions m JOIN entities e "
            "ON e.entity_id = m.entity_id JOIN versions v ON v.text_id = m.text_id "
            "ORDER BY 1, 2, 3"
        ).fetchall()
        out["edges"] = c.execute(
            "SELECT src, dst, relation, weight, cube, offset FROM edges ORDER BY 6, 1, 2"
        ).fetchall()
        out["entities"] = c.execute("SELECT name FROM entities ORDER BY 1").fetchall()
    return out


CHILD = textwrap.dedent("""
    import sys
    from ledger.api import Ledger
    from ledger.backends.sqlite_log import SqliteLog
    from projections.base import catch_up
    from projections.graph_view import GraphView
    from projections.text_view import KeywordView
    d = sys.argv[1]
    ledger = Ledger(SqliteLog(d + "/log.sqlite"))
    views = [KeywordView(d + "/kw.sqlite"), GraphView(d + "/graph.sqlite")]
    def source(start, end):
        for e in ledger.events(start, end):
            if e.offset % 200 == 0:
                print("at", e.offset, flush=True)
            yield e
    for v in views:
        catch_up(source, v, batch_size=37)
    print("done", flush=True)
""")


def test_kill_during_catch_up_then_restart_equals_rebuild(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "log.sqlite")
    _populate(ledger, 3000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed_at = []
    for attempt in range(3):  # kill at a few different points
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        target = 400 + 900 * attempt
        for line in proc.stdout:
            if line.startswith("at") and int(line.split()[1]) >= target:
                time.sleep(0.01 * attempt)
                os.kill(proc.pid, signal.SIGKILL)
                killed_at.append(target)
                break
            if line.startswith("done"):
                break
        proc.wait(timeout=60)
    assert killed_at, "the child finished before it could be killed"
    kw, graph = KeywordView(tmp_path / "kw.sqlite"), GraphView(tmp_path / "graph.sqlite")
    assert kw.checkpoint() < ledger.head() or graph.checkpoint() < ledger.head()
    for v in (kw, graph):
        catch_up(ledger.events, v)
    clean_kw, clean_graph = KeywordView(tmp_path / "kw2.sqlite"), GraphView(tmp_path / "graph2.sqlite")
    for v in (clean_kw, clean_graph):
        rebuild(ledger.events, v)
    assert dump(kw) == dump(clean_kw)
    assert dump(graph) == dump(clean_graph)
    assert kw.keyword_search("violin Lisbon", 10) == clean_kw.keyword_search("violin Lisbon", 10)


def _files(d: Path) -> list[Path]:
    return [p for p in d.iterdir() if p.name.startswith(("kw", "graph"))]


def test_forgotten_subject_leaves_no_text_in_view_files(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "log.sqlite")
    secret = "Zanzibarian quokkas whisper Xylophonic secrets to Quentinella"
    ledger.log.append(
        [
            NewEvent("c", ev.MEMORY_ADDED, {"memory_id": "s1", "text": secret, "subject": "alice"}, "u"),
            NewEvent(
                "c",
                ev.MEMORY_ADDED,
                {"memory_id": "keep", "text": "ordinary note about quokkas", "subject": "bob"},
                "u",
            ),
            NewEvent("c", ev.MEMORY_UPDATED, {"memory_id": "s1", "text": secret + " again, Quentinella"}, "u"),
            NewEvent("c", ev.MEMORY_LINKED, {"source": "s1", "target": "keep", "relation": "about"}, "u"),
        ]
    )
    kw, graph = KeywordView(tmp_path / "kw.sqlite"), GraphView(tmp_path / "graph.sqlite")
    for v in (kw, graph):
        catch_up(ledger.events, v)
    assert [m for m, _ in kw.keyword_search("zanzibarian", 5)] == ["s1"]
    assert graph.entities_of("s1")
    needles = [b"Zanzibarian", b"zanzibarian", b"xylophon", b"Xylophonic", b"quentinella", b"Quentinella"]
    assert any(n in p.read_bytes() for p in _files(tmp_path) for n in needles)  # the test can fail

    ledger.log.append([NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": "alice"}, "dpo")])
    for v in (kw, graph):
        catch_up(ledger.events, v)
    assert kw.keyword_search("zanzibarian quokkas", 5) == [("keep", kw.keyword_search("quokkas", 5)[0][1])]
    assert kw.versions_at(["s1"], 0) == {} and graph.versions_at(["s1"], 2) == {}
    assert graph.neighbours(["keep"]) == []
    for p in _files(tmp_path):
        data = p.read_bytes()
        for n in needles:
            assert n not in data, f"{n!r} survives in {p.name}"
    # a rebuild from the log (where the text is still plaintext here) purges the same way
    clean = KeywordView(tmp_path / "kw_clean.sqlite")
    rebuild(ledger.events, clean)
    assert dump(clean)["versions"] == dump(kw)["versions"] and dump(clean)["terms"] == dump(kw)["terms"]
    assert dump(clean)["postings"] == dump(kw)["postings"]
    for at in range(ledger.head() + 1):  # document count and length as of every offset
        assert clean.corpus_stats(["quokka"], None, at) == kw.corpus_stats(["quokka"], None, at)

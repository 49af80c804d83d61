"""Event builders and a random event-sequence strategy for the vector view tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ledger import events as ev
from ledger.events import Event

WORDS = ["alpha", "beta", "gamma", "delta", "coffee", "tea", "paris", "berlin", "meeting", "dog", "cat", "blue"]
CUBES = ["c1", "c2"]
SUBJECTS = ["alice", "bob"]
STATES = ["generated", "activated", "merged", "archived", "frozen"]


class Opener:
    """Opens fake sealed payloads; subjects in ``destroyed`` have lost their key (crypto-shredded)."""

    def __init__(self, destroyed: set[str] | None = None):
        self.destroyed = set(destroyed or ())

    def __call__(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        if sealed["subject"] in self.destroyed:
            return None
        return {"text": sealed["ciphertext"], "metadata": {"sealed": True}}


def sealed(subject: str, text: str) -> dict[str, Any]:
    return {"subject": subject, "key_id": f"k-{subject}", "alg": "AES-256-GCM", "nonce": "00", "ciphertext": text}


def make_event(offset: int, stream: str, type_: str, payload: dict[str, Any], ts_us: int | None = None) -> Event:
    return Event(
        offset=offset,
        stream=stream,
        version=0,
        event_id=f"e{offset}",
        type=type_,
        schema_version=1,
        ts_us=ts_us if ts_us is not None else 1_700_000_000_000_000 + offset,
        actor="tester",
        causation_id=None,
        correlation_id=None,
        payload=payload,
        prev_hash="",
        hash="",
    )


@st.composite
def event_sequences(draw: st.DrawFn, max_ops: int = 30) -> tuple[list[Event], set[str]]:
    """A random, well-formed event sequence and the set of subjects forgotten in it."""
    n_ops = draw(st.integers(1, max_ops))
    events: list[Event] = []
    live: dict[str, tuple[str, str | None]] = {}  # memory id -> (cube, subject)
    forgotten: set[str] = set()
    counter = 0

    def text() -> str:
        return " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4)))

    def emit(stream: str, t: str, p: dict[str, Any]) -> None:
        events.append(make_event(len(events), stream, t, p))

    for _ in range(n_ops):
        op = draw(
            st.sampled_from(
                [
                    "add",
                    "add",
                    "add_sealed",
                    "update",
                    "state",
                    "tag",
                    "merge",
                    "restore",
                    "gone",
                    "read",
                    "forget",
                    "dup",
                ]
            )
        )
        ids = sorted(live)
        if op in ("add", "add_sealed") or not ids:
            counter += 1
            mid = f"m{counter}"
            cube = draw(st.sampled_from(CUBES))
            p: dict[str, Any] = {
                "memory_id": mid,
                "tags": [],
                "state": draw(st.sampled_from(STATES[:2])),
                "metadata": {"n": counter},
            }
            subject = None
            if op == "add_sealed":
                subject = draw(st.sampled_from(SUBJECTS))
                p["sealed"] = sealed(subject, text())
                p["subject"] = subject
            else:
                p["text"] = text()
            live[mid] = (cube, subject)
            emit(cube, ev.MEMORY_ADDED, p)
            continue
        mid = draw(st.sampled_from(ids))
        cube, subject = live[mid]
        if op == "update":
            p = {"memory_id": mid}
            if subject:
                p["sealed"] = sealed(subject, text())
                p["subject"] = subject
            else:
                p["text"] = text()
            if draw(st.booleans()):
                p["metadata"] = {"u": len(events)}
            emit(cube, ev.MEMORY_UPDATED, p)
        elif op == "state":
            emit(cube, ev.MEMORY_STATE_CHANGED, {"memory_id": mid, "from": "x", "to": draw(st.sampled_from(STATES))})
        elif op == "tag":
            emit(cube, ev.MEMORY_TAGGED, {"memory_id": mid, "add": [draw(st.sampled_from(WORDS))], "remove": []})
        elif op == "merge" and len(ids) >= 2:
            srcs = draw(st.lists(st.sampled_from(ids), min_size=2, max_size=3, unique=True))
            counter += 1
            new = f"m{counter}"
            subjects = {live[s][1] for s in srcs if live[s][1]}
            subj = sorted(subjects)[0] if subjects else None
            p = {"memory_id": new, "sources": srcs}
            if subj:
                p["sealed"] = sealed(subj, text())
                p["subject"] = subj
            else:
                p["text"] = text()
            live[new] = (cube, subj)
            emit(cube, ev.MEMORY_MERGED, p)
        elif op == "restore":
            p = {"memory_id": mid, "to_offset": max(0, len(events) - 2), "state": draw(st.sampled_from(STATES[:2]))}
            if subject:
                p["sealed"] = sealed(subject, text())
            else:
                p["text"] = text()
            emit(cube, ev.MEMORY_RESTORED, p)
        elif op == "gone":
            emit(cube, ev.MEMORY_RESTORED, {"memory_id": mid, "to_offset": -1, "exists": False})
        elif op == "read":
            emit(cube, ev.MEMORY_READ, {"memory_ids": [mid], "operation": "get", "as_of": None})
        elif op == "forget":
            s = draw(st.sampled_from(SUBJECTS))
            forgotten.add(s)
            emit(ev.SYSTEM_STREAM, ev.SUBJECT_FORGOTTEN, {"subject": s})
        elif op == "dup":  # the same text as another memory: shares a vector slot
            counter += 1
            new = f"m{counter}"
            emit(cube, ev.MEMORY_ADDED, {"memory_id": new, "text": WORDS[0], "tags": [], "metadata": {}})
            live[new] = (cube, None)
    return events, forgotten

"""``MemledgerStore``: a LangGraph ``BaseStore`` whose items are memledger memories.

    store = MemledgerStore(MemledgerClient(url, token=...))      # or EmbeddedClient(data, actor=...)
    store.put(("memories", "alice"), "drink", {"text": "Alice prefers green tea"})
    store.search(("memories", "alice"), query="what does Alice drink?")

Mapping: the first namespace element is the cube (or every item goes to ``cube=`` when given);
the namespace and key are kept in metadata (``lg.ns.0``, ``lg.ns.1``, ... , ``lg.key``), which
are the scopes a search filters on, so a namespace prefix is an exact metadata filter. The
value is stored whole under ``lg.value`` and its top-level scalar fields as ``lg.v.<field>`` (what
``filter=`` matches); the memory text, which search ranks, is the value's ``text`` (or
``content``/``memory``) field, the fields named by ``index=``, or the value as JSON.

A put of an existing key writes a new version of the same memory (its history keeps the old
values); ``delete`` archives the memory (memledger keeps everything; archived memories are not
returned any more). Every read and write is an event naming the client's principal.

Lookups by key use an index of each cube's items built by listing the cube once, and refreshed
when a key is not found (so a key written by another process is found at the price of one
listing). TTLs are not supported.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from ledger.client.models import Memory

NS = "lg.ns."
KEY = "lg.key"
DEPTH = "lg.depth"
VALUE = "lg.value"
FIELD = "lg.v."
TEXT_FIELDS = ("text", "content", "memory")
LIVE = frozenset({"generated", "activated", "frozen"})
_OPS = {
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: a is not None and a > b,
    "$gte": lambda a, b: a is not None and a >= b,
    "$lt": lambda a, b: a is not None and a < b,
    "$lte": lambda a, b: a is not None and a <= b,
}


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _text(value: dict[str, Any], index: list[str] | None) -> str:
    if index:
        parts = [value.get(f) for f in index]
        return " ".join(p if isinstance(p, str) else json.dumps(p) for p in parts if p is not None) or json.dumps(value)
    for name in TEXT_FIELDS:
        if isinstance(value.get(name), str) and value[name].strip():
            return str(value[name])
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _matches(value: dict[str, Any], flt: dict[str, Any] | None) -> bool:
    for field, want in (flt or {}).items():
        have = value.get(field)
        if isinstance(want, dict) and want and all(k in _OPS for k in want):
            if not all(_OPS[op](have, arg) for op, arg in want.items()):
                return False
        elif have != want:
            return False
    return True


class MemledgerStore(BaseStore):
    """LangGraph's key-value + search store over a memledger client (remote or embedded)."""

    def __init__(self, client: Any, cube: str | None = None):
        """``client``: a ``MemledgerClient`` or ``EmbeddedClient``; ``cube``: put every namespace in one cube."""
        self.client = client
        self.cube = cube
        self._index: dict[str, dict[tuple[tuple[str, ...], str], Memory]] = {}

    # -- mapping ------------------------------------------------------------------------------
    def _cube_of(self, namespace: tuple[str, ...]) -> str:
        if self.cube:
            return self.cube
        if not namespace:
            raise ValueError("a namespace needs at least one element (its first element names the cube)")
        return namespace[0]

    @staticmethod
    def _address(m: Memory) -> tuple[tuple[str, ...], str] | None:
        meta = m.metadata
        if KEY not in meta or not isinstance(meta.get(DEPTH), int):
            return None
        return tuple(str(meta[f"{NS}{i}"]) for i in range(meta[DEPTH])), str(meta[KEY])

    def _item(self, m: Memory, cls: type[Item] = Item, score: float | None = None) -> Any:
        address = self._address(m)
        ns, key = address if address else ((), m.id)
        stamps = {
            "created_at": datetime.fromisoformat(m.created_at),
            "updated_at": datetime.fromisoformat(m.updated_at),
        }
        value = m.metadata.get(VALUE) or {}
        if cls is SearchItem:
            return SearchItem(ns, key, value, score=score, **stamps)
        return Item(value=value, key=key, namespace=ns, **stamps)

    def _load(self, cube: str, refresh: bool = False) -> dict[tuple[tuple[str, ...], str], Memory]:
        if refresh or cube not in self._index:
            found: dict[tuple[tuple[str, ...], str], Memory] = {}
            if cube in {c["cube"] for c in self.client.cubes()}:
                after = None
                while True:
                    page = self.client.list_memories(cube, limit=1000, after=after)
                    for m in page.memories:
                        if m.state in LIVE and (address := self._address(m)) is not None:
                            found[address] = m
                    if page.next_after is None:
                        break
                    after = page.next_after
            self._index[cube] = found
        return self._index[cube]

    def _find(self, namespace: tuple[str, ...], key: str) -> Memory | None:
        cube = self._cube_of(namespace)
        hit = self._load(cube).get((namespace, key))
        if hit is None:
            hit = self._load(cube, refresh=True).get((namespace, key))
        return hit

    # -- operations ---------------------------------------------------------------------------
    def _get(self, op: GetOp) -> Item | None:
        m = self._find(op.namespace, op.key)
        if m is None:
            return None
        current = self.client.get(m.id)  # the current version, and an audited read
        if current.state not in LIVE:
            self._index[current.cube].pop((op.namespace, op.key), None)
            return None
        return self._item(current)

    def _put(self, op: PutOp) -> None:
        cube = self._cube_of(op.namespace)
        existing = self._find(op.namespace, op.key)
        if op.value is None:
            if existing is not None:
                self.client.change_state(existing.id, "archived", reason="deleted through the LangGraph store")
                self._index[cube].pop((op.namespace, op.key), None)
            return
        value = dict(op.value)
        meta: dict[str, Any] = {f"{NS}{i}": part for i, part in enumerate(op.namespace)}
        meta.update({DEPTH: len(op.namespace), KEY: op.key, VALUE: value})
        meta.update({f"{FIELD}{k}": v for k, v in value.items() if _scalar(v)})
        text = _text(value, op.index if isinstance(op.index, list) else None)
        if existing is not None:
            w = self.client.update(existing.id, text, metadata=meta)
        else:
            # one memory per key: two keys holding the same value are two memories, not a duplicate
            w = self.client.add(cube=cube, text=text, metadata=meta, allow_duplicate=True)
        self._index.setdefault(cube, {})[(op.namespace, op.key)] = self.client.get(w.id)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = op.namespace_prefix
        cube = self._cube_of(prefix)
        scope = {f"{NS}{i}": part for i, part in enumerate(prefix)}
        exact = {f"{FIELD}{k}": v for k, v in (op.filter or {}).items() if _scalar(v)}
        if op.query:
            hits = self.client.search(
                op.query, cubes=[cube], k=min(1000, op.limit + op.offset), metadata={**scope, **exact}
            )
            ranked = [(self.client.get(h.id), h.score) for h in hits]
        else:
            items = self._load(cube, refresh=True).values()
            ranked = [(m, None) for m in sorted(items, key=lambda m: m.updated_at, reverse=True)]
        out = []
        for m, score in ranked:
            address = self._address(m)
            if address is None or address[0][: len(prefix)] != prefix:
                continue
            if _matches(m.metadata.get(VALUE) or {}, op.filter):
                out.append(self._item(m, SearchItem, score))
        return out[op.offset : op.offset + op.limit]

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        cubes = [self.cube] if self.cube else [c["cube"] for c in self.client.cubes()]
        found = {ns for cube in cubes for (ns, _) in self._load(cube, refresh=True)}
        for cond in op.match_conditions or ():
            path = tuple(cond.path)

            def fits(ns: tuple[str, ...], path: tuple[str, ...] = path, kind: str = cond.match_type) -> bool:
                part = ns[: len(path)] if kind == "prefix" else ns[-len(path) :]
                return len(ns) >= len(path) and all(p == "*" or p == n for p, n in zip(path, part, strict=True))

            found = {ns for ns in found if fits(ns)}
        if op.max_depth is not None:
            found = {ns[: op.max_depth] for ns in found}
        return sorted(found)[op.offset : op.offset + op.limit]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order (LangGraph's single entry point of a store)."""
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._namespaces(op))
            else:
                raise ValueError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch`` in a worker thread (the client calls block)."""
        return await asyncio.to_thread(self.batch, list(ops))

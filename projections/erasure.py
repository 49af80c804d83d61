"""Erasure participants of a data directory: the views and caches that must let go of erased data.

``ledger.governance.forget`` (and every later erasure) calls ``erase`` on each participant once the
key is destroyed and the erasure is recorded, then ``residue`` to prove nothing is left:

- ``SearchViews``: the keyword, graph and vector views (caught up, which purges the erased memories'
  rows); residue is any row of an erased memory, and any vector of an erased text's digest in the
  vector view or the embedding cache (the cache is keyed by text digest, so this is the embedding
  residue check: no vector computed from an erased text survives);
- ``KVCaches``: the KV-cache store (caught up, which deletes every cache built from an erased memory);
  residue is any cache whose recorded lineage names an erased memory or subject, any cache file the
  index does not account for, and any cache whose *token ids* decode to an erased text (decoded with
  the tokenizer that built it; a cache whose tokenizer is not available here cannot be proven clean
  and is reported).

``data_dir_participants`` is what ``ledger.factory.open_ledger`` hands the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledger.api import Ledger
from ledger.events import Event
from ledger.governance.scrub import find_residue
from ledger.memory_state import Erasure
from projections.vector.embedding_cache import EmbeddingCache, text_hash

MIN_NEEDLE = 8  # texts shorter than this are not searched for (too many false hits)


def _normal(text: str) -> str:
    return " ".join(text.split())


class SearchViews:
    """The embedded search views under ``<data>/views``."""

    name = "views"

    def __init__(self, root: Path):
        self.root = Path(root)

    def _exists(self) -> bool:
        return (self.root / "views").is_dir()

    def erase(self, ledger: Ledger, event: Event) -> None:
        if not self._exists():
            return
        from projections.view_set import ViewSet

        try:
            views = ViewSet.open(ledger, self.root)
        except Exception as exc:  # e.g. the vector view's embedder cannot load here
            with ViewSet.open(ledger, self.root, kinds=("keyword", "graph")) as partial:
                partial.catch_up()
            raise RuntimeError(
                f"only the keyword and graph views were caught up; the others did not open: {exc}"
            ) from exc
        with views:
            views.catch_up()

    def residue(self, erasure: Erasure, texts: Sequence[str]) -> list[str]:
        if not self._exists():
            return []
        out: list[str] = []
        ids = list(erasure.memory_ids)
        views_dir = self.root / "views"
        for name in ("keyword", "graph"):
            path = views_dir / f"{name}.sqlite"
            if path.exists() and ids:
                view = _open_temporal(name, path)
                try:
                    out += [f"{name} view still holds memory {m}" for m in view.memory_ids_present(ids)]
                finally:
                    view.close()
        digests = [text_hash(t) for t in texts if isinstance(t, str) and len(t.strip()) >= MIN_NEEDLE]
        vector_path = views_dir / "vector.sqlite"
        if vector_path.exists() and ids:
            out += [f"vector view still holds memory {m}" for m in _vector_rows(vector_path, ids)]
        cache_path = views_dir / "embedding_cache.sqlite"
        if cache_path.exists() and digests:
            cache = EmbeddingCache(cache_path)
            try:
                out += [
                    f"embedding cache still holds the vector of an erased text (digest {d.hex()[:16]})"
                    for d in cache.present(digests)
                ]
            finally:
                cache.close()
        if vector_path.exists() and digests:
            out += [
                f"vector view still holds the vector of an erased text (digest {d.hex()[:16]})"
                for d in _vector_digests(vector_path, digests)
            ]
        # vectors are stored under the SHA-256 digest of their text: a digest anywhere else (a copied
        # cache, a backup of the view) is an embedding of an erased text too
        known = {str(p) for p in (cache_path, vector_path)}
        for found in find_residue(self.root, [*digests, *(d.hex().encode() for d in digests)]):
            if found not in known and not found.endswith(("-wal", "-shm")):
                out.append(f"{found} holds the digest (and so perhaps the embedding) of an erased text")
        return out

    def artifacts(self, memory_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The embeddings the vector view holds for these memories (one per stored version)."""
        path = self.root / "views" / "vector.sqlite"
        if not path.exists() or not memory_ids:
            return []
        import sqlite3

        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = []
            for i in range(0, len(memory_ids), 500):
                chunk = list(memory_ids[i : i + 500])
                rows += conn.execute(
                    "SELECT v.memory_id, v.valid_from, x.text_sha256 FROM versions v JOIN vectors x ON x.slot = v.slot "
                    f"WHERE v.memory_id IN ({','.join('?' * len(chunk))}) ORDER BY v.memory_id, v.valid_from",
                    chunk,
                ).fetchall()
        except sqlite3.Error:
            return []
        finally:
            conn.close()
        return [
            {"kind": "embedding", "memory_id": m, "version_offset": o, "text_sha256": bytes(d).hex()}
            for m, o, d in rows
        ]


def _open_temporal(name: str, path: Path) -> Any:
    if name == "keyword":
        from projections.text_view import KeywordView

        return KeywordView(path)
    from projections.graph_view import GraphView

    return GraphView(path)


def _vector_rows(path: Path, ids: list[str]) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            found.update(
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT memory_id FROM versions WHERE memory_id IN ({','.join('?' * len(chunk))})", chunk
                )
            )
        return sorted(found)
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _vector_digests(path: Path, digests: list[bytes]) -> list[bytes]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        found: set[bytes] = set()
        for i in range(0, len(digests), 500):
            chunk = digests[i : i + 500]
            found.update(
                bytes(r[0])
                for r in conn.execute(
                    f"SELECT text_sha256 FROM vectors WHERE text_sha256 IN ({','.join('?' * len(chunk))})", chunk
                )
            )
        return sorted(found)
    except sqlite3.Error:
        return []
    finally:
        conn.close()


class KVCaches:
    """The KV-cache store under ``<data>/kv_cache`` (activation memory)."""

    name = "kv_cache"

    def __init__(self, root: Path, config: Any = None):
        self.root = Path(root)
        self.config = config

    def _exists(self) -> bool:
        return (self.root / "kv_cache" / "index.sqlite").exists()

    def erase(self, ledger: Ledger, event: Event) -> None:
        if not self._exists():
            return
        from projections.kv_cache import KVCacheView

        view = KVCacheView.open(ledger, self.root)
        try:
            view.catch_up()
        finally:
            view.close()

    def residue(self, erasure: Erasure, texts: Sequence[str]) -> list[str]:
        from projections.kv_store import KVStore

        out: list[str] = []
        if self._exists():
            store = KVStore(self.root / "kv_cache")
            try:
                out += [
                    f"cache {k[:16]} was built from an erased memory"
                    for k in store.built_from(list(erasure.memory_ids), list(erasure.subjects))
                ]
                out += [
                    f"cache file {p.name} is not in the index (its origin is unknown)" for p in store.unindexed_files()
                ]
            finally:
                store.close()
        out += token_residue(self.root, texts, self.config)  # any cache file anywhere in the data directory
        return out

    def artifacts(self, memory_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The stored KV caches whose context held one of these memories."""
        if not self._exists():
            return []
        from projections.kv_store import KVStore

        store = KVStore(self.root / "kv_cache")
        try:
            wanted = set(store.built_from(list(memory_ids), []))
            return [
                {"kind": "kv_cache", "key": e["key"], "model_id": e.get("model_id"), "memory_ids": e["memory_ids"]}
                for e in store.entries()
                if e["key"] in wanted
            ]
        finally:
            store.close()


def token_residue(root: Path, texts: Sequence[str], config: Any = None) -> list[str]:
    """KV-cache files under ``root`` whose token ids decode to (or contain the tokens of) an erased text."""
    needles = [_normal(t) for t in texts if isinstance(t, str) and len(t.strip()) >= MIN_NEEDLE]
    files = sorted(root.rglob("*.safetensors"))
    if not needles or not files:
        return []
    from safetensors import safe_open

    from ledger.llm import known_tokenizers

    tokenizers = known_tokenizers(config)
    out: list[str] = []
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as fh:
                tid = (fh.metadata() or {}).get("tokenizer_id", "")
                ids = [int(t) for t in fh.get_tensor("token_ids").tolist()]
        except Exception as exc:  # noqa: BLE001 - a damaged file is reported, not trusted
            out.append(f"cache file {path.name} cannot be read to check its tokens: {exc}")
            continue
        tok = tokenizers.get(tid)
        if tok is None:
            out.append(
                f"cache file {path.name} was built with a tokenizer not available here ({tid[:12]}): "
                "its token ids cannot be checked"
            )
            continue
        decoded = _normal(tok.decode(ids, skip_special_tokens=False))
        if any(n in decoded for n in needles) or _has_token_run(tok, ids, needles):
            out.append(f"cache file {path.name} holds the token ids of an erased text")
    return out


def _has_token_run(tok: Any, ids: list[int], needles: list[str]) -> bool:
    """Whether the token ids of a needle (minus its first and last token, which depend on context)
    appear as a run in ``ids``."""
    hay = ",".join(map(str, ids))
    for n in needles:
        run = list(tok(n, add_special_tokens=False)["input_ids"])[1:-1]
        if len(run) >= 3 and ("," + ",".join(map(str, run)) + ",") in f",{hay},":
            return True
    return False


def data_dir_participants(ledger: Ledger, root: Path | None) -> list[Any]:
    """The erasure participants of a data directory (none without one)."""
    if root is None:
        return []
    return [SearchViews(root), KVCaches(root, ledger.config)]

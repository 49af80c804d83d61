"""``MemledgerRetriever``: a LangChain retriever over memledger search (remote or embedded).

    retriever = MemledgerRetriever(client=MemledgerClient(url, token=...), cubes=["alice"], k=5)
    docs = retriever.invoke("what does Alice drink?")

Each ``Document`` is one memory: its text as ``page_content`` and its id, cube, score, state,
version and metadata in ``metadata``. Every search is audited under the client's principal.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict


class MemledgerRetriever(BaseRetriever):
    """Hybrid search of memledger cubes as LangChain documents."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Any  # a MemledgerClient or EmbeddedClient
    cubes: list[str] | None = None  # default: every cube the principal can read
    k: int = 5
    metadata_filter: dict[str, Any] | None = None
    as_of: int | str | None = None
    branch: str | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.client.search(
            query, cubes=self.cubes, k=self.k, as_of=self.as_of, branch=self.branch, metadata=self.metadata_filter
        )
        return [
            Document(
                page_content=h.text or "",
                id=h.id,
                metadata={
                    "id": h.id,
                    "cube": h.cube,
                    "score": h.score,
                    "state": h.state,
                    "version": h.version,
                    "updated_at": h.updated_at,
                    "metadata": h.metadata,
                },
            )
            for h in hits
        ]

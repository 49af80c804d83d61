"""The vector view: embeddings of memory versions, exact and approximate similarity search.

- ``view``: ``VectorView``, the projection and its queries;
- ``writer``: folding a batch of events into rows and vectors (one transaction);
- ``columns``: the in-memory columns searches scan;
- ``ann``: the optional usearch HNSW index for large queries;
- ``embedding`` and ``embedding_cache``: embedders and the digest-keyed vector cache;
- ``setup``: opening the configured view of a data directory.
"""

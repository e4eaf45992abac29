"""Backends by name: the search structures of an index, and keeping them level with the store."""
from __future__ import annotations

from pathlib import Path

from .base import SearchIndex

BACKENDS = ("local", "milvus")
ANN = ("auto", "flat", "hnsw")


def open_indexes(backend: str, root: str | Path, *, dim: int, ann: str = "auto", milvus_uri: str | None = None,
                 milvus_token: str | None = None, collection: str | None = None) -> list[SearchIndex]:
    """The dense and sparse structures of the index at ``root``; nothing is loaded or connected yet."""
    if backend == "local":
        from .bm25_sparse import BM25Index
        from .faiss_dense import FaissIndex

        return [FaissIndex(Path(root) / "index" / "dense", ann=ann), BM25Index(Path(root) / "index" / "sparse")]
    if backend == "milvus":
        from .milvus import MilvusCollection, MilvusDense, MilvusSparse

        shared = MilvusCollection(milvus_uri or str(Path(root) / "milvus.db"), collection or "newsrag", dim,
                                  token=milvus_token)
        return [MilvusDense(shared), MilvusSparse(shared)]
    raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")


def catch_up(store, indexes: list[SearchIndex], persist: bool) -> None:
    """Bring each index to the store's generation by replaying what it has not applied.

    ``persist``: the caller holds the write lock, so the replay is saved; otherwise it
    only updates this process's view (a reader while a writer works or after a crash),
    where the backend keeps one.
    """
    now = store.generation()
    for index in indexes:
        have = index.saved_generation() if persist else index.generation()
        if have < now:
            index.apply(store.changes_since(have), persist=persist)

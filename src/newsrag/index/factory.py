"""Backends by name: the search structures of an index, and keeping them level with the store."""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from ..text import one_line
from .base import BackendError, SearchIndex, TermSource

log = logging.getLogger("newsrag.index")

BACKENDS = ("local", "milvus")
ANN = ("auto", "flat", "hnsw")


def open_indexes(backend: str, root: str | Path, *, dim: int, ann: str = "auto", milvus_uri: str | None = None,
                 milvus_token: str | None = None, collection: str | None = None,
                 terms: TermSource | None = None) -> list[SearchIndex]:
    """The dense and sparse structures of the index at ``root``; nothing is loaded or connected yet.

    ``terms``: the store, whose BM25 statistics the milvus backend scores with.
    """
    if backend == "local":
        from .bm25_sparse import BM25Index
        from .faiss_dense import FaissIndex

        return [FaissIndex(Path(root) / "index" / "dense", ann=ann), BM25Index(Path(root) / "index" / "sparse")]
    if backend == "milvus":
        from .milvus import MilvusCollection, MilvusDense, MilvusSparse

        shared = MilvusCollection(milvus_uri or str(Path(root) / "milvus.db"), collection or "newsrag", dim,
                                  token=milvus_token)
        if terms is None:
            raise ValueError("the milvus backend scores BM25 with the store's statistics: pass terms=")
        return [MilvusDense(shared), MilvusSparse(shared, terms)]
    raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")


def catch_up(store, indexes: list[SearchIndex], persist: bool) -> None:
    """Bring each index to the store's generation by replaying what it has not applied.

    ``persist``: the caller holds the write lock, so the replay is saved; otherwise it
    only updates this process's view (a reader while a writer works or after a crash),
    where the backend keeps one.
    """
    if persist and any(index.uses_term_stats for index in indexes):
        store.count_terms()  # the first time only (an index made before the store counted terms)
    now = store.generation()
    for index in indexes:
        if not (persist or index.replays_in_memory):
            continue  # it would do nothing; asking a server its generation costs a round trip per search
        have = index.saved_generation() if persist else index.generation()
        if have < now:
            try:
                index.apply(store.changes_since(have), persist=persist)
            except (BackendError, OSError, sqlite3.Error):
                raise  # a server or a disk that refuses: the caller reports it
            except Exception as e:  # noqa: BLE001  a saved segment that no longer loads (FAISS, numpy)
                if not persist:
                    raise
                # The structure is only derived from SQLite: rebuild it rather than fail the write.
                log.warning("%s index damaged (%s); rebuilding it from SQLite", index.kind, one_line(e))
                index.reset()
                index.apply(store.changes_since(0), persist=True)

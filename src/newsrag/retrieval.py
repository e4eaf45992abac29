"""Hybrid retrieval: BM25 over jieba tokens and dense vectors, fused by score.

Both retrievers score every chunk the filters allow (a BM25 pass over the
sparse index, one matrix-vector product over the FAISS vectors), so fusion
never has to guess the score of a chunk that one list cut off. Each score is
standardised (z-score over the allowed chunks) and combined as
``BM25_WEIGHT * bm25 + (1 - BM25_WEIGHT) * dense``. On the QA benchmarks
(benchmarks/retrieval.py) this beat reciprocal-rank fusion, which let the
weaker dense list pull good BM25 hits down.

Date and source filters are applied before ranking, so a filter never empties
a top-k that was cut before filtering.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .embedders import Embedder
from .store import Derived, Store
from .text import normalize, tokens

MODES = ("hybrid", "bm25", "dense")
BM25_WEIGHT = 0.7
CANDIDATES = 100  # a chunk "was found by" a retriever when it ranks this high in it


@dataclass
class Hit:
    article_id: str
    title: str
    date: str | None
    source: str
    url: str
    text: str  # the chunk, in the article's own script
    start: int  # span of the chunk in the article's clean text
    end: int
    score: float
    retrievers: list[str]
    chunk_id: int
    duplicates: list[str] = field(default_factory=list)  # near-duplicate copies folded into this one

    def to_dict(self) -> dict:
        return asdict(self)


def bm25_scores(d: Derived, norm: str) -> np.ndarray:
    """BM25 score of every chunk, in the derived index's chunk order (zeros when no term is known)."""
    query = [t for t in tokens(norm) if t in d.bm25.vocab_dict]
    if not query:
        return np.zeros(len(d.chunk_ids), dtype=np.float32)
    return np.asarray(d.bm25.get_scores(query), dtype=np.float32)


def dense_scores(d: Derived, embedder: Embedder, norm: str) -> np.ndarray:
    """Cosine similarity of every chunk to the question."""
    return d.vectors @ embedder.embed_query(norm).astype(np.float32)


def _standardise(x: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    v = x[allowed]
    return (x - v.mean()) / (v.std() + 1e-9)


def _top(scores: np.ndarray, allowed: np.ndarray, n: int, positive: bool = False) -> np.ndarray:
    """Positions of the ``n`` best allowed scores, best first."""
    s = np.where(allowed & ((scores > 0) if positive else True), scores, -np.inf)
    n = min(n, int(np.isfinite(s).sum()))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.argpartition(-s, n - 1)[:n]
    return idx[np.argsort(-s[idx], kind="stable")]


def search(store: Store, embedder: Embedder, question: str, k: int = 10, *, since: str | None = None,
           until: str | None = None, source: str | None = None, mode: str = "hybrid",
           max_per_article: int = 1, candidates: int = CANDIDATES, include_undated: bool = False) -> list[Hit]:
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r} (one of {', '.join(MODES)})")
    d = store.derived()  # once: every array below must come from the same generation
    if d is None or not len(d.chunk_ids):
        return []
    if since or until or source:
        ids = store.filtered_chunk_ids(since, until, normalize(source) if source else None, include_undated)
        allowed = np.isin(d.chunk_ids, ids)
    else:
        allowed = np.ones(len(d.chunk_ids), dtype=bool)
    if not allowed.any():
        return []
    norm = normalize(question)
    n = max(candidates, k * 5)
    found: dict[int, list[str]] = {}
    if mode in ("hybrid", "bm25"):
        bm25 = bm25_scores(d, norm)
        for p in _top(bm25, allowed, n, positive=True):
            found.setdefault(int(p), []).append("bm25")
    if mode in ("hybrid", "dense"):
        dense = dense_scores(d, embedder, norm)
        for p in _top(dense, allowed, n):
            found.setdefault(int(p), []).append("dense")
    if mode == "bm25":
        score, order = bm25, _top(bm25, allowed, n, positive=True)
    elif mode == "dense":
        score, order = dense, _top(dense, allowed, n)
    else:
        score = BM25_WEIGHT * _standardise(bm25, allowed) + (1 - BM25_WEIGHT) * _standardise(dense, allowed)
        order = _top(score, allowed, 2 * n)

    rows = store.chunk_rows(int(d.chunk_ids[p]) for p in order)
    hits: list[Hit] = []
    per_article: dict[str, int] = {}
    for p in order:
        r = rows.get(int(d.chunk_ids[p]))
        if r is None:
            continue
        taken = per_article.get(r["article_id"], 0)
        if max_per_article and taken >= max_per_article:
            continue
        per_article[r["article_id"]] = taken + 1
        hits.append(Hit(r["article_id"], r["title"], r["date"], r["source"], r["url"], r["text"],
                        r["start"], r["end"], round(float(score[p]), 6), found.get(int(p), []), r["chunk_id"]))
        if len(hits) >= k:
            break
    for h in hits:
        h.duplicates = store.duplicates_of(h.article_id)
    return hits

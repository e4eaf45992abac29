"""Hybrid retrieval: BM25 over jieba tokens and dense vectors, fused by reciprocal rank.

Date and source filters restrict both retrievers before ranking (a FAISS ID
selector and a BM25 weight mask), so a filter never empties a top-k that was
cut before filtering.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .embedders import Embedder
from .store import Store
from .text import normalize, tokens

MODES = ("hybrid", "bm25", "dense")
RRF_K = 60  # the constant of Cormack et al.; flattens the head of each list


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


def _dense(store: Store, embedder: Embedder, norm: str, n: int, allowed: np.ndarray | None) -> list[int]:
    import faiss

    d = store.derived()
    q = embedder.embed_query(norm).reshape(1, -1).astype(np.float32)
    params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed)) if allowed is not None else None
    _, ids = d.faiss_index.search(q, min(n, d.faiss_index.ntotal), params=params)
    return [int(i) for i in ids[0] if i >= 0]


def _bm25(store: Store, norm: str, n: int, allowed: np.ndarray | None) -> list[int]:
    d = store.derived()
    query = [t for t in tokens(norm) if t in d.bm25.vocab_dict]
    if not query:
        return []
    mask = np.isin(d.chunk_ids, allowed).astype(np.float32) if allowed is not None else None
    docs, scores = d.bm25.retrieve([query], k=min(n, len(d.chunk_ids)), weight_mask=mask,
                                   show_progress=False, n_threads=1)
    return [int(d.chunk_ids[p]) for p, s in zip(docs[0], scores[0]) if s > 0]


def rrf(rankings: dict[str, list[int]]) -> list[tuple[int, float, list[str]]]:
    """Fuse ranked id lists: score = sum of 1/(RRF_K + rank) over the lists an id is in."""
    scores: dict[int, float] = {}
    found: dict[int, list[str]] = {}
    for name, ids in rankings.items():
        for rank, cid in enumerate(ids, 1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
            found.setdefault(cid, []).append(name)
    return [(cid, s, found[cid]) for cid, s in sorted(scores.items(), key=lambda x: -x[1])]


def search(store: Store, embedder: Embedder, question: str, k: int = 10, *, since: str | None = None,
           until: str | None = None, source: str | None = None, mode: str = "hybrid",
           max_per_article: int = 1, candidates: int = 100) -> list[Hit]:
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r} (one of {', '.join(MODES)})")
    d = store.derived()
    if d is None or not len(d.chunk_ids):
        return []
    allowed = None
    if since or until or source:
        allowed = store.filtered_chunk_ids(since, until, normalize(source) if source else None)
        if not len(allowed):
            return []
    norm = normalize(question)
    n = max(candidates, k * 5)
    rankings = {}
    if mode in ("hybrid", "bm25"):
        rankings["bm25"] = _bm25(store, norm, n, allowed)
    if mode in ("hybrid", "dense"):
        rankings["dense"] = _dense(store, embedder, norm, n, allowed)
    fused = rrf(rankings)

    rows = store.chunk_rows(cid for cid, _, _ in fused)
    hits: list[Hit] = []
    per_article: dict[str, int] = {}
    for cid, score, found in fused:
        r = rows.get(cid)
        if r is None:
            continue
        taken = per_article.get(r["article_id"], 0)
        if max_per_article and taken >= max_per_article:
            continue
        per_article[r["article_id"]] = taken + 1
        hits.append(Hit(r["article_id"], r["title"], r["date"], r["source"], r["url"], r["text"],
                        r["start"], r["end"], round(score, 6), found, cid))
        if len(hits) >= k:
            break
    for h in hits:
        h.duplicates = store.duplicates_of(h.article_id)
    return hits

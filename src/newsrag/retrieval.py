"""Hybrid retrieval: BM25 over jieba tokens and dense vectors, fused by score, then
(optionally) the top candidates re-ordered by a cross-encoder (``rerank.py``).

Each retriever returns its best candidates inside the filter (dates, source),
so a filter never empties a top-k that was cut before filtering. Fusion
(``index/fusion.py``) scores the union of the candidates with both retrievers
and weights their standardised scores.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .chunking import indexed_text
from .embedders import Embedder
from .index.base import Filter, Query, SearchIndex
from .index.fusion import found_by, fuse
from .rerank import DEPTH, Reranker
from .text import normalize, tokens

MODES = ("hybrid", "bm25", "dense")
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
    rerank_score: float | None = None  # the reranker's, when one ordered the hits (``score`` is retrieval's)

    def to_dict(self) -> dict:
        return asdict(self)


def rank(indexes: list[SearchIndex], embedder: Embedder, question: str, n: int, where: Filter,
         mode: str = "hybrid") -> tuple[np.ndarray, np.ndarray, dict[int, list[str]]]:
    """(chunk ids, scores, which retrievers found each), best first, at most ``2n``."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r} (one of {', '.join(MODES)})")
    norm = normalize(question)
    by_kind = {i.kind: i for i in indexes}
    wanted = {"hybrid": ("sparse", "dense"), "bm25": ("sparse",), "dense": ("dense",)}[mode]
    query = Query(norm, tokens(norm))
    if "dense" in wanted:
        query.vector = np.asarray(embedder.embed_query(norm), dtype=np.float32)
    lists = {kind: by_kind[kind].search(query, n, where) for kind in wanted}
    if mode == "hybrid":
        ids, scores = fuse(lists, {kind: (lambda ids, i=by_kind[kind]: i.scores(query, ids)) for kind in lists})
        ids, scores = ids[:2 * n], scores[:2 * n]
    else:
        ids, scores = lists[wanted[0]].ids, lists[wanted[0]].scores
    return ids, scores, found_by(lists, ids)


def search(store, indexes: list[SearchIndex], embedder: Embedder, question: str, k: int = 10, *,
           since: str | None = None, until: str | None = None, source: str | None = None, mode: str = "hybrid",
           max_per_article: int = 1, candidates: int = CANDIDATES, include_undated: bool = False,
           reranker: Reranker | None = None) -> list[Hit]:
    """The ``k`` best passages; with a ``reranker``, the best ``k`` of the top rerank.DEPTH by its scores."""
    where = Filter(since, until, normalize(source) if source else None, include_undated)
    take = max(k, DEPTH) if reranker is not None else k  # the reranker chooses among more
    ids, scores, found = rank(indexes, embedder, question, max(candidates, take * 5), where, mode)
    hits: list[Hit] = []
    per_article: dict[str, int] = {}
    step = max(4 * take, 20)  # rows are read a slice at a time: most searches stop within the first
    for at in range(0, len(ids), step):
        rows = store.chunk_rows(int(i) for i in ids[at:at + step])
        for cid, score in zip(ids[at:at + step].tolist(), scores[at:at + step].tolist()):
            r = rows.get(cid)
            if r is None:  # deleted after the index view was taken
                continue
            taken = per_article.get(r["article_id"], 0)
            if max_per_article and taken >= max_per_article:
                continue
            per_article[r["article_id"]] = taken + 1
            hits.append(Hit(r["article_id"], r["title"], r["date"], r["source"], r["url"], r["text"],
                            r["start"], r["end"], round(float(score), 6), found[cid], cid))
            if len(hits) >= take:
                break
        if len(hits) >= take:
            break
    if reranker is not None and hits:
        reranked = reranker.scores(normalize(question), [indexed_text(h.title, h.text) for h in hits])
        for h, s in zip(hits, reranked.tolist()):
            h.rerank_score = round(s, 6)
        hits = [hits[i] for i in np.argsort(-reranked, kind="stable")[:k]]  # ties keep retrieval's order
    for h in hits:
        h.duplicates = store.duplicates_of(h.article_id)
    return hits

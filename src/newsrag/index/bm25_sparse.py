"""Sparse retrieval: BM25 over jieba tokens, in segments that update in place.

Why not one bm25s index: bm25s bakes the collection's IDF and average length
into every stored score, so one new article would mean re-scoring the whole
matrix. Why not SQLite FTS5 or tantivy: both fix BM25 at k1=1.2, b=0.75, and
these chunks, already cut to a token budget, retrieve better with Anserini's
milder 0.9/0.4 (benchmarks/retrieval.py). So each segment stores raw term
frequencies (a term-major sparse matrix) and document lengths, and a search
computes IDF and the average length over all live segments at query time, the
way Lucene combines its segments. The scores equal bm25s's "lucene" variant
over the same chunks.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from .base import ChunkRecord, Filter, Query, Ranked
from .segments import Segment, SegmentedIndex, View

BM25_K1, BM25_B = 0.9, 0.4


def idf(live: int, df) -> float:
    """Lucene's IDF of a term in ``df`` of ``live`` chunks."""
    return float(np.log(1 + (live - df + 0.5) / (df + 0.5)))


def saturation(tf, length, avgdl: float, k1: float = BM25_K1, b: float = BM25_B):
    """A term's BM25 factor for its frequency in a chunk of ``length`` tokens (arrays or numbers)."""
    return tf / (tf + k1 * (1 - b + b * length / avgdl))


class SparseSegment(Segment):
    def __init__(self, ids, dates, src_codes, src_names, vocab: list[str], indptr: np.ndarray,
                 rows: np.ndarray, tf: np.ndarray, lengths: np.ndarray):
        super().__init__(ids, dates, src_codes, src_names)
        self.vocab = vocab
        self.term = {t: i for i, t in enumerate(vocab)}
        self.indptr, self.rows, self.tf, self.lengths = indptr, rows, tf, lengths

    @classmethod
    def _from_triples(cls, meta, vocab: list[str], rows: np.ndarray, cols: np.ndarray, tf: np.ndarray,
                      lengths: np.ndarray) -> "SparseSegment":
        """Postings grouped by term (row order kept inside a term) from (row, term, tf) triples."""
        order = np.lexsort((rows, cols))
        rows, cols, tf = rows[order], cols[order], tf[order]
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=len(vocab)), out=indptr[1:])
        return cls(*meta, vocab, indptr, rows.astype(np.int32), tf.astype(np.float32),
                   lengths.astype(np.float32))

    @classmethod
    def build(cls, records: Sequence[ChunkRecord], options: dict) -> "SparseSegment":
        term: dict[str, int] = {}
        rows, cols = [], []
        for i, r in enumerate(records):
            for t in r.tokens:
                rows.append(i)
                cols.append(term.setdefault(t, len(term)))
        lengths = np.array([len(r.tokens) for r in records], dtype=np.float32)
        rows, cols = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)
        # Count repeated (row, term) pairs: the term frequency.
        key = rows * max(len(term), 1) + cols
        uniq, tf = np.unique(key, return_counts=True)
        return cls._from_triples(cls._meta_of(records), list(term), uniq // max(len(term), 1),
                                 uniq % max(len(term), 1), tf, lengths)

    def _triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cols = np.repeat(np.arange(len(self.vocab), dtype=np.int64), np.diff(self.indptr))
        return self.rows.astype(np.int64), cols, self.tf

    @classmethod
    def merge(cls, parts, keeps, options) -> "SparseSegment":
        ids, dates, codes, names, order = cls._merge_meta(parts, keeps)
        where = np.empty(len(order), dtype=np.int64)
        where[order] = np.arange(len(order))  # position in the concatenation -> merged row
        term: dict[str, int] = {}
        all_rows, all_cols, all_tf, lengths = [], [], [], []
        offset = 0
        for p, keep in zip(parts, keeps):
            new_row = np.full(len(p), -1, dtype=np.int64)
            new_row[keep] = where[offset:offset + int(keep.sum())]
            offset += int(keep.sum())
            remap = np.array([term.setdefault(t, len(term)) for t in p.vocab] or [0], dtype=np.int64)
            rows, cols, tf = p._triples()
            live = new_row[rows] >= 0
            all_rows.append(new_row[rows[live]])
            all_cols.append(remap[cols[live]])
            all_tf.append(tf[live])
            lengths.append(p.lengths[keep])
        merged_len = np.empty(len(order), dtype=np.float32)
        merged_len[:] = np.concatenate(lengths)[order]
        return cls._from_triples((ids, dates, codes, names), list(term), np.concatenate(all_rows),
                                 np.concatenate(all_cols), np.concatenate(all_tf), merged_len)

    def save(self, base: Path) -> None:
        self._save_meta(base)
        with open(base.with_suffix(".bm25.npz"), "wb") as f:
            np.savez(f, indptr=self.indptr, rows=self.rows, tf=self.tf, lengths=self.lengths)
        base.with_suffix(".vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, base: Path, options: dict) -> "SparseSegment":
        with np.load(base.with_suffix(".bm25.npz")) as z:
            arrays = (z["indptr"], z["rows"], z["tf"], z["lengths"])
        vocab = json.loads(base.with_suffix(".vocab.json").read_text(encoding="utf-8"))
        return cls(*cls._load_meta(base), vocab, *arrays)

    @staticmethod
    def files(base: Path) -> list[Path]:
        return Segment.files(base) + [base.with_suffix(".bm25.npz"), base.with_suffix(".vocab.json")]

    def postings(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.term.get(token)
        if i is None:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.rows[a:b], self.tf[a:b]

    def df(self, token: str, dead: np.ndarray | None) -> int:
        """Live rows holding ``token`` (deleted rows do not count, so scores never depend on merging)."""
        rows, _ = self.postings(token)
        return len(rows) - (int(dead[rows].sum()) if dead is not None and len(rows) else 0)

    def score(self, weights: dict[str, float], avgdl: float, k1: float, b: float) -> np.ndarray:
        """BM25 of every row for query tokens with their IDF (repeated tokens count again)."""
        out = np.zeros(len(self), dtype=np.float32)
        for token, w in weights.items():
            rows, tf = self.postings(token)
            if len(rows):  # work in proportion to the postings, not to the segment
                out[rows] += w * saturation(tf, self.lengths[rows], avgdl, k1, b)
        return out


class BM25Index(SegmentedIndex):
    kind = "sparse"

    def __init__(self, folder: str | Path, k1: float = BM25_K1, b: float = BM25_B):
        self.k1, self.b = k1, b
        super().__init__(folder, SparseSegment, tag=f"bm25 k1={k1} b={b}")

    def _weights(self, view: View, tokens: list[str]) -> tuple[dict[str, float], float]:
        """Each query token's IDF times its count, and the average live length, over all segments."""
        live_rows = view.count()
        if not live_rows:
            return {}, 1.0
        total = sum(float(s.lengths.sum()) - (0.0 if d is None else float(s.lengths[d].sum()))
                    for s, d in zip(view.segments, view.dead))
        weights: dict[str, float] = {}
        # A token repeated in the query counts once per occurrence, as bm25s scores it.
        for t, n in Counter(tokens).items():
            df = sum(seg.df(t, dead) for seg, dead in zip(view.segments, view.dead))
            if df:
                weights[t] = n * idf(live_rows, df)
        return weights, max(total / live_rows, 1e-9)

    def search(self, query: Query, k: int, where: Filter | None = None) -> Ranked:
        view = self.view()
        weights, avgdl = self._weights(view, query.tokens)
        ids, scores = [], []
        total = count = square = 0.0
        for i, seg in enumerate(view.segments):
            s = seg.score(weights, avgdl, self.k1, self.b) if weights else np.zeros(len(seg), np.float32)
            live = view.live(i, where)
            allowed = s if live is None else s[live]
            count += len(allowed)
            total += float(allowed.sum(dtype=np.float64))
            square += float(np.square(allowed, dtype=np.float64).sum())
            candidates = (s > 0) if live is None else (s > 0) & live
            rows = np.flatnonzero(candidates)
            if len(rows) > k:
                rows = rows[np.argpartition(-s[rows], k - 1)[:k]]
            ids.append(seg.ids[rows])
            scores.append(s[rows])
        if not count:
            return Ranked.none()
        mean = total / count
        std = max(square / count - mean * mean, 0.0) ** 0.5
        ids, scores = np.concatenate(ids), np.concatenate(scores)
        top = np.lexsort((ids, -scores))[:k]
        return Ranked(ids[top], scores[top].astype(np.float32), mean, std)

    def scores(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        view = self.view()
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros(len(ids), np.float32)
        weights, avgdl = self._weights(view, query.tokens)
        if not weights:
            return out
        for i, seg in enumerate(view.segments):
            hit, rows = view.rows_of(i, ids)
            if not hit.any():
                continue
            acc = np.zeros(len(rows), np.float32)
            for token, w in weights.items():
                prow, tf = seg.postings(token)
                if len(prow):
                    at = np.searchsorted(prow, rows)
                    at = np.minimum(at, len(prow) - 1)
                    present = prow[at] == rows
                    acc[present] += w * saturation(tf[at[present]], seg.lengths[rows][present], avgdl,
                                                   self.k1, self.b)
            out[hit] = acc
        return out

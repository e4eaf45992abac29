"""Dense retrieval on FAISS: one index per segment, exact while small, HNSW once large.

The index type is chosen by a segment's row count (as txtai sizes its ANN), or
forced by the ``ann`` setting: ``flat`` (exact everywhere) or ``hnsw``. Filters
run inside the search through an ``IDSelectorBitmap``; when few rows pass a
filter, those rows are scored exactly instead, so a filtered search returns
``k`` hits whenever ``k`` rows pass it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .base import ChunkRecord, Filter, Query, Ranked
from .segments import Segment, SegmentedIndex, View

HNSW_MIN_ROWS = 20_000  # below this a flat scan of a segment costs about what a graph search does
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200  # one 180k-row segment: recall@10 at efSearch 256 0.775 with 80, 0.907 with 200
HNSW_EF_SEARCH = 256  # recall@10 against exact at 1.12M chunks (six 200k-row graphs, efConstruction 200):
#   0.943 at 128, 0.967 at 256, 0.979 at 384, 0.986 at 512 (benchmarks/scale.py)
EXACT_BELOW = 4096  # rows passing a filter: below this, score them all exactly
SAMPLE_ROWS = 1024  # per segment, for the spread of a query's similarities (fusion standardises by it)


def dot(vectors: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``vectors @ q`` without BLAS: for one query OpenBLAS wakes its thread pool past ~1,500 rows,
    which on a busy 2-core machine took 21 ms where numpy's own loop takes under 3 (11k × 384)."""
    return np.einsum("ij,j->i", vectors, q)


def _faiss():
    import faiss

    return faiss


class DenseSegment(Segment):
    def __init__(self, ids, dates, src_codes, src_names, index):
        super().__init__(ids, dates, src_codes, src_names)
        self.index = index

    @staticmethod
    def _make(vectors: np.ndarray, options: dict):
        faiss = _faiss()
        n, dim = vectors.shape
        kind = options.get("ann", "auto")
        if kind == "hnsw" or (kind == "auto" and n >= HNSW_MIN_ROWS):
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            index = faiss.IndexFlatIP(dim)
        if n:
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return index

    @classmethod
    def build(cls, records: Sequence[ChunkRecord], options: dict) -> "DenseSegment":
        vectors = np.stack([np.asarray(r.vector, np.float32) for r in records])
        return cls(*cls._meta_of(records), cls._make(vectors, options))

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        if not self.is_graph:  # a flat index's own storage, without a copy
            flat = _faiss().rev_swig_ptr(self.index.get_xb(), len(self) * self.index.d)
            flat = flat.reshape(len(self), self.index.d) if len(self) else np.zeros((0, self.index.d), np.float32)
            return flat if rows is None else flat[np.asarray(rows, dtype=np.int64)]
        if rows is None:
            return self.index.reconstruct_n(0, len(self))
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros((0, self.index.d), np.float32)
        return self.index.reconstruct_batch(rows)

    @classmethod
    def merge(cls, parts, keeps, options) -> "DenseSegment":
        *meta, order = cls._merge_meta(parts, keeps)
        vectors = np.concatenate([p.vectors(np.flatnonzero(k)) for p, k in zip(parts, keeps)])
        return cls(*meta, cls._make(vectors[order], options))

    def save(self, base: Path) -> None:
        self._save_meta(base)
        _faiss().write_index(self.index, str(base.with_suffix(".faiss")))

    @classmethod
    def load(cls, base: Path, options: dict) -> "DenseSegment":
        return cls(*cls._load_meta(base), _faiss().read_index(str(base.with_suffix(".faiss"))))

    @staticmethod
    def files(base: Path) -> list[Path]:
        return Segment.files(base) + [base.with_suffix(".faiss")]

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """Evenly spaced rows and their vectors, kept for the life of the segment."""
        if not hasattr(self, "_sample"):
            rows = np.arange(0, len(self), -(-len(self) // SAMPLE_ROWS), dtype=np.int64)
            self._sample = (rows, self.vectors(rows))
        return self._sample

    @property
    def is_graph(self) -> bool:
        return not isinstance(self.index, _faiss().IndexFlat)

    def search(self, q: np.ndarray, k: int, live: np.ndarray | None, exact: bool = False):
        """(rows, scores) of the best ``k`` live rows, best first."""
        faiss = _faiss()
        n = len(self)
        allowed = n if live is None else int(live.sum())
        if allowed == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(k, allowed)
        if not self.is_graph:
            # Exact by blocks of matrix-vector products: FAISS's flat search spreads one query
            # over OpenMP threads, which on a busy 2-core machine cost more than it saved.
            s = dot(self.vectors(), q)
            if live is not None:
                s = np.where(live, s, -np.inf)
            top = np.argpartition(-s, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.argsort(-s[top], kind="stable")]
            return top.astype(np.int64), s[top].astype(np.float32)
        if live is not None and (allowed <= EXACT_BELOW or exact):
            rows = np.flatnonzero(live)
            s = dot(self.vectors(rows), q)
            top = np.argsort(-s, kind="stable")[:k]
            return rows[top], s[top].astype(np.float32)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(HNSW_EF_SEARCH, k)
        if live is not None:
            bits = np.packbits(live, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
        scores, rows = self.index.search(q.reshape(1, -1), k, params=params)
        keep = rows[0] >= 0
        rows, scores = rows[0][keep], scores[0][keep]
        if len(rows) < k:  # a graph walk can strand itself behind a filter
            return self.search(q, k, live if live is not None else np.ones(n, bool), exact=True)
        return rows.astype(np.int64), scores.astype(np.float32)


class FaissIndex(SegmentedIndex):
    kind = "dense"

    def __init__(self, folder: str | Path, ann: str = "auto"):
        if ann not in ("auto", "flat", "hnsw"):
            raise ValueError(f"unknown ann {ann!r} (auto, flat or hnsw)")
        # The ANN choice is per segment; segments built another way stay valid, so it is no tag.
        super().__init__(folder, DenseSegment, {"ann": ann})

    def search(self, query: Query, k: int, where: Filter | None = None) -> Ranked:
        view = self.view()
        q = np.asarray(query.vector, dtype=np.float32)
        ids, scores = [], []
        for i, seg in enumerate(view.segments):
            rows, s = seg.search(q, k, view.live(i, where))
            ids.append(seg.ids[rows])
            scores.append(s)
        if not ids:
            return Ranked.none()
        ids, scores = np.concatenate(ids), np.concatenate(scores)
        top = np.argsort(-scores, kind="stable")[:k]
        mean, std = self._spread(view, q, where)
        return Ranked(ids[top], scores[top], mean, std)

    @staticmethod
    def _spread(view: View, q: np.ndarray, where: Filter | None) -> tuple[float, float]:
        """Mean and deviation of the query's similarity over the allowed rows, from each segment's sample."""
        sims, weights = [], []
        for i, seg in enumerate(view.segments):
            rows, vecs = seg.sample()
            live = view.live(i, where)
            if live is not None:
                allowed = int(live.sum())
                keep = live[rows]
                if allowed and not keep.any():  # the filter missed the sample: use the rows themselves
                    rows = np.flatnonzero(live)[:SAMPLE_ROWS]
                    vecs, keep = seg.vectors(rows), np.ones(len(rows), bool)
                vecs = vecs[keep]
            else:
                allowed = len(seg)
            if allowed and len(vecs):
                sims.append(dot(vecs, q))
                weights.append(np.full(len(vecs), allowed / len(vecs)))
        if not sims:
            return 0.0, 1.0
        s, w = np.concatenate(sims), np.concatenate(weights)
        mean = float(np.average(s, weights=w))
        return mean, float(np.sqrt(np.average((s - mean) ** 2, weights=w)))

    def scores(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        view = self.view()
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros(len(ids), np.float32)
        q = np.asarray(query.vector, dtype=np.float32)
        for i, seg in enumerate(view.segments):
            hit, rows = view.rows_of(i, ids)
            if hit.any():
                out[hit] = dot(seg.vectors(rows), q)
        return out

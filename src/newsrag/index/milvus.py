"""Milvus behind the same seam: one collection per archive holds both retrievers.

Each chunk is a row: its id, its vector (HNSW, inner product), its BM25 tokens
as text with Milvus's built-in BM25 function filling a sparse field (k1 and b
as the local index), its date and normalized source for filters. The tokens
are the same jieba tokens the local index uses, joined by spaces, so the
``standard`` analyzer (which Milvus Lite also has) only splits them apart
again. The generation the collection has applied is a collection property, so
a crash between the SQLite commit and the Milvus update is replayed like the
local segments are.

BM25 as the local index scores it: Milvus's BM25 function finds the top
``RESCORE`` candidates, and newsrag scores them with the local formula (k1 0.9,
b 0.4) from the tokens and document frequencies the SQLite store keeps
(``TermSource``). Milvus Lite 3.2.2 ignores ``bm25_k1``/``bm25_b`` (it scores with
1.2/0.75) and keeps corpus statistics per segment, so its own scores ranked
differently: 0.020 MRR@10 below local on news; rescored, they are equal on
all three sets of benchmarks/retrieval.py (docs/scale.md). They can differ only where the
local top-k falls outside Milvus's top ``RESCORE``.

Hybrid search is fused by ``fusion.py``, as for the local indexes: each
retriever reports the spread of its scores over the chunks the filter allows
(dense: a sample of stored vectors; BM25: its candidates' scores and zero
for every other allowed chunk), and a candidate of the other list gets its
exact score. On the same Milvus candidates (benchmarks/retrieval.py, 400
questions a set) Milvus's own ``WeightedRanker`` (arctan-normalised scores, no
rescoring) lost up to 0.035 MRR@10 to this and ``RRFRanker`` up to 0.12.

``uri`` is a Milvus Lite file (``./news.db``: embedded, one process at a time)
or a server (``http://host:19530``, with ``token``).
"""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Iterator, Sequence

import numpy as np

from ..text import one_line
from .base import BackendError, Changes, Filter, Query, Ranked, TermSource, date_key
from .bm25_sparse import BM25_B, BM25_K1, idf, saturation
from .faiss_dense import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M

GENERATION = "newsrag.generation"
MAX_ID = "newsrag.max_id"  # the largest chunk id ever stored: where the dense sample's ids are drawn from
SCHEMA = ("newsrag.schema", "2")  # a collection of another layout is rebuilt from SQLite
INSERT_BATCH = 1000
HNSW = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}  # the local segments' graph, for the same recall
RESCORE = 300  # BM25 candidates fetched and rescored per search (Lite: ~30 ms for 300, ~70 ms for 1,000 here)
SAMPLE = 2048  # ids tried for the spread of a query's similarities (as the local segments sample theirs)
CACHE_SECONDS = 60  # a sample and a count are reused this long (another process may be writing)
INDEX_WAIT = 60.0  # seconds an apply waits for Milvus to index what it flushed


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "\\%").replace("_", "\\_")


def expression(where: Filter | None) -> str:
    """A Filter as a Milvus boolean expression ("" for none)."""
    if where is None or where.empty:
        return ""
    parts = []
    if where.since or where.until:
        lo, hi = date_key(where.since) or 1, date_key(where.until) or 99991231
        dated = f"(date >= {lo} and date <= {hi})"
        parts.append(f"({dated} or date == 0)" if where.include_undated else dated)
    if where.source:
        parts.append(f'source like "%{_escape(where.source)}%"')
    return " and ".join(parts)


class MilvusCollection:
    """The connection, the schema, and the generation the collection has applied."""

    def __init__(self, uri: str, name: str, dim: int, token: str | None = None, k1: float = BM25_K1,
                 b: float = BM25_B):
        self.uri, self.name, self.dim, self.token, self.k1, self.b = uri, name, dim, token, k1, b
        self._client = None
        self._cache: dict[tuple, tuple[float, object]] = {}

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        """Whatever pymilvus or gRPC raise becomes one BackendError line."""
        try:
            yield
        except BackendError:
            raise
        except Exception as e:  # MilvusException, grpc.RpcError, ConnectionError, ...
            raise BackendError(f"milvus at {self.uri}: {one_line(getattr(e, 'message', None) or e)}") from e

    @property
    def client(self):
        if self._client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError:
                raise BackendError("the milvus backend needs pymilvus: pip install 'newsrag[milvus]'") from None
            with self.calling():
                client = MilvusClient(self.uri, token=self.token or "")
                self._client = client
                if client.has_collection(self.name) and self._properties().get(SCHEMA[0]) != SCHEMA[1]:
                    client.drop_collection(self.name)  # an older layout: generation 0, replayed from SQLite
                if not client.has_collection(self.name):
                    self._create()
                client.load_collection(self.name)  # a collection is released when its server restarts
        return self._client

    def _properties(self) -> dict:
        return self.client.describe_collection(self.name).get("properties") or {}

    def _create(self) -> None:
        from pymilvus import DataType, Function, FunctionType

        c = self._client
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        # Lite knows only the standard and jieba tokenizers; standard keeps a run of Chinese
        # characters whole, so it splits our space-joined tokens and little else.
        schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                         analyzer_params={"tokenizer": "standard"})
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("date", DataType.INT32)
        schema.add_field("source", DataType.VARCHAR, max_length=1024)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                     output_field_names=["sparse"]))
        params = c.prepare_index_params()
        params.add_index("vector", index_type="HNSW", metric_type="IP", params=HNSW)
        params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                         params={"bm25_k1": self.k1, "bm25_b": self.b})
        c.create_collection(self.name, schema=schema, index_params=params)
        c.alter_collection_properties(self.name, properties={GENERATION: "0", MAX_ID: "0", SCHEMA[0]: SCHEMA[1]})
        self._cache = {}

    def generation(self) -> int:
        with self.calling():
            return int(self._properties().get(GENERATION, 0))

    def apply(self, changes: Changes) -> None:
        with self.calling():
            self._apply(changes)

    def _apply(self, changes: Changes) -> None:
        c = self.client
        top = int(self._properties().get(MAX_ID, 0))
        for batch in changes.upserts:
            for i in range(0, len(batch), INSERT_BATCH):
                c.upsert(self.name, [{"id": r.id, "vector": np.asarray(r.vector, np.float32).tolist(),
                                      "text": " ".join(r.tokens)[:60000], "date": date_key(r.date),
                                      "source": r.source_norm[:1000]} for r in batch[i:i + INSERT_BATCH]])
            top = max([top] + [r.id for r in batch])
        if len(changes.deletes):
            c.delete(self.name, ids=[int(i) for i in changes.deletes])
        # Sealed and indexed now, not at the first search: Milvus Lite searched an unflushed
        # 7k-chunk collection in 0.6-3 s (brute force), the same flushed and indexed in 20-60 ms.
        c.flush(self.name)
        c.alter_collection_properties(self.name, properties={GENERATION: str(changes.generation), MAX_ID: str(top)})
        self._cache = {}
        self._wait_for_index()

    def _wait_for_index(self) -> None:
        end = time.monotonic() + INDEX_WAIT
        for field in ("vector", "sparse"):
            while time.monotonic() < end:
                info = self._client.describe_index(self.name, field) or {}
                if not info.get("pending_index_rows"):
                    break
                time.sleep(0.2)

    def count(self) -> int:
        with self.calling():
            res = self.client.query(self.name, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def ids(self) -> np.ndarray:
        """Every row's id, read in pages (a query's result is capped at 16,384 rows)."""
        out: list[int] = []
        with self.calling():
            it = self.client.query_iterator(self.name, batch_size=INSERT_BATCH, filter="id >= 0",
                                            output_fields=["id"])
            try:
                while page := it.next():
                    out.extend(r["id"] for r in page)
            finally:
                it.close()
        return np.array(out, dtype=np.int64)

    def reset(self) -> None:
        """Drop the collection and create it empty at generation 0."""
        with self.calling():
            self.client.drop_collection(self.name)
            self._create()
            self.client.load_collection(self.name)

    def cached(self, key: tuple, make):
        """``make()``, reused for ``CACHE_SECONDS`` and until this process writes."""
        hit = self._cache.get(key)
        if hit is None or time.monotonic() - hit[0] > CACHE_SECONDS:
            hit = self._cache[key] = (time.monotonic(), make())
        return hit[1]

    def allowed(self, expr: str) -> int:
        """How many chunks pass ``expr``."""
        def count() -> int:
            with self.calling():
                return int(self.client.query(self.name, filter=expr, output_fields=["count(*)"])[0]["count(*)"])
        return self.cached(("count", expr), count)

    def sample(self, expr: str) -> np.ndarray:
        """Vectors of evenly spread chunks that pass ``expr`` (the first ones that do when too few of those)."""
        def fetch() -> np.ndarray:
            with self.calling():
                top = int(self._properties().get(MAX_ID, 0))
                ids = np.unique(np.linspace(1, max(top, 1), SAMPLE).astype(np.int64)).tolist()
                where = f"id in {ids}" + (f" and ({expr})" if expr else "")
                rows = self.client.query(self.name, filter=where, output_fields=["vector"], limit=SAMPLE)
                if len(rows) < 64 and expr:  # a narrow filter missed the spread ids
                    rows = self.client.query(self.name, filter=expr, output_fields=["vector"], limit=SAMPLE)
            return np.array([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), self.dim)
        return self.cached(("sample", expr), fetch)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def search(self, field: str, data, k: int, expr: str, params: dict) -> Ranked:
        with self.calling():
            # Naming the output field: without it pymilvus 3 took 2-4x as long per hit.
            res = self.client.search(self.name, data=[data], anns_field=field, limit=k, filter=expr,
                                     search_params=params, output_fields=["id"])
        hits = res[0] if res else []
        ids = np.array([h["id"] for h in hits], dtype=np.int64)
        # BM25 is never negative; Milvus Lite reports it negated (smaller is better there).
        scores = np.array([abs(h["distance"]) if field == "sparse" else h["distance"] for h in hits],
                          dtype=np.float32)
        return Ranked(ids, scores)


class _Facade:
    """One retriever of the shared collection, as the SearchIndex protocol wants it."""

    kind = ""
    replays_in_memory = False  # a reader never writes to a shared server (it could undo a writer's delete)
    uses_term_stats = False

    def __init__(self, collection: MilvusCollection):
        self.collection = collection

    def apply(self, changes: Changes, persist: bool = True) -> None:
        # A reader without the write lock must not write to a shared server; it searches what is there.
        if persist:
            self.collection.apply(changes)

    def saved_generation(self) -> int:
        return self.collection.generation()

    generation = saved_generation

    def count(self) -> int:
        return self.collection.count()

    def ids(self) -> np.ndarray:
        return self.collection.ids()

    def reset(self) -> None:
        # Both retrievers share the collection: resetting one resets the other, and the
        # replay that follows fills both.
        self.collection.reset()

    def close(self) -> None:
        self.collection.close()


class MilvusDense(_Facade):
    kind = "dense"

    def search(self, query: Query, k: int, where: Filter | None = None) -> Ranked:
        expr, q = expression(where), np.asarray(query.vector, np.float32)
        found = self.collection.search("vector", q.tolist(), k, expr,
                                       {"metric_type": "IP", "params": {"ef": max(HNSW_EF_SEARCH, k)}})
        sims = self.collection.sample(expr) @ q
        if len(sims):
            found.mean, found.std = float(sims.mean()), float(sims.std())
        return found

    def scores(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        c = self.collection
        with c.calling():
            rows = {r["id"]: r["vector"] for r in c.client.get(c.name, ids=ids, output_fields=["vector"])}
        q = np.asarray(query.vector, np.float32)
        return np.array([float(np.dot(rows[i], q)) if i in rows else 0.0 for i in ids], dtype=np.float32)


class MilvusSparse(_Facade):
    """Milvus's BM25 finds the candidates; the local index's formula and the store's statistics score them."""

    kind = "sparse"
    uses_term_stats = True

    def __init__(self, collection: MilvusCollection, terms: TermSource):
        super().__init__(collection)
        self.terms = terms

    def search(self, query: Query, k: int, where: Filter | None = None) -> Ranked:
        if not query.tokens:
            return Ranked.none()
        expr = expression(where)
        found = self.collection.search("sparse", " ".join(query.tokens), max(k, RESCORE), expr,
                                       {"metric_type": "BM25"})
        scores = self.scores(query, found.ids)
        keep = np.lexsort((found.ids, -scores))
        keep = keep[scores[keep] > 0]
        ids, scores = found.ids[keep], scores[keep]
        # Over every allowed chunk: the candidates' scores, and zero for the rest (most match no query word).
        n = max(self.collection.allowed(expr), len(ids), 1)
        mean = float(scores.sum(dtype=np.float64)) / n
        square = float(np.square(scores, dtype=np.float64).sum()) / n
        return Ranked(ids[:k], scores[:k], mean, max(square - mean * mean, 0.0) ** 0.5)

    def scores(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        """BM25 of ``ids`` as the local index scores them: its k1 and b, the store's IDF and lengths."""
        ids = [int(i) for i in ids]
        out = np.zeros(len(ids), np.float32)
        if not ids or not query.tokens:
            return out
        live, avgdl, df = self.terms.term_stats(query.tokens)
        weights = {t: n * idf(live, df[t]) for t, n in Counter(query.tokens).items() if t in df}
        if not weights:
            return out
        docs = self.terms.chunk_tokens(ids)
        tfs = [Counter(docs.get(i, ())) for i in ids]
        lengths = np.array([len(docs.get(i, ())) for i in ids], np.float32)
        c = self.collection
        for t, w in weights.items():  # in float32 and in this order, as the local segments add it up
            tf = np.array([counts[t] for counts in tfs], np.float32)
            hit = tf > 0
            out[hit] += w * saturation(tf[hit], lengths[hit], avgdl, c.k1, c.b)
        return out

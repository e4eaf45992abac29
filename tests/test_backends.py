"""One contract every search backend passes (as Haystack does for its document stores).

A backend is the pair of search structures ``index.factory.open_indexes`` gives
for a name and options; each test feeds it changes as the SQLite store would
and checks what a search returns. A new backend joins by adding its
parameters to BACKENDS.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from newsrag.index.base import Changes, ChunkRecord, Filter, Query
from newsrag.index.factory import open_indexes

BACKENDS = [("local", {"ann": "auto"}), ("local", {"ann": "flat"}), ("local", {"ann": "hnsw"}),
            pytest.param(("milvus", {"collection": "chunks"}), marks=pytest.mark.skipif(
                not (importlib.util.find_spec("pymilvus") and importlib.util.find_spec("milvus_lite")),
                reason="needs newsrag[milvus]"))]
DIM = 16
WORDS = [f"w{i}" for i in range(40)]


def record(i: int, date: str | None = "2024-03-01", source: str = "日报") -> ChunkRecord:
    rng = np.random.default_rng(i)
    v = rng.normal(size=DIM).astype(np.float32)
    toks = [WORDS[j] for j in rng.integers(0, len(WORDS), size=8)] + [f"only{i}"]
    return ChunkRecord(i, toks, v / np.linalg.norm(v), date, source)


class Feed:
    """Stands in for the store: numbered generations of upserts and deletes."""

    def __init__(self):
        self.gen = 0

    def changes(self, upserts=(), deletes=()) -> Changes:
        self.gen += 1
        batch = list(upserts)
        return Changes(self.gen, iter([batch] if batch else []), np.array(list(deletes), dtype=np.int64))


class MemoryTerms:
    """The store's BM25 statistics (``TermSource``) over the chunks the tests applied."""

    def __init__(self):
        self.chunks: dict[int, list[str]] = {}

    def term_stats(self, tokens):
        docs = list(self.chunks.values())
        df = {t: sum(t in d for d in docs) for t in set(tokens)}
        return len(docs), sum(map(len, docs)) / max(len(docs), 1), {t: n for t, n in df.items() if n}

    def chunk_tokens(self, ids):
        return {int(i): self.chunks[int(i)] for i in ids if int(i) in self.chunks}

    def recording(self, index):
        """``index``, whose applied changes this records first (as the store committed them first)."""
        apply = index.apply

        def record(changes: Changes, persist: bool = True) -> None:
            batches = [list(b) for b in changes.upserts]
            for batch in batches:
                self.chunks.update((r.id, r.tokens) for r in batch)
            for i in changes.deletes:
                self.chunks.pop(int(i), None)
            apply(Changes(changes.generation, iter(batches), changes.deletes), persist)

        index.apply = record
        return index


@pytest.fixture(params=BACKENDS, ids=lambda b: f"{b[0]}-{'-'.join(map(str, b[1].values()))}")
def backend(request, tmp_path):
    name, options = request.param
    if name == "milvus":  # Milvus Lite: one file; BM25 statistics from the store
        terms = MemoryTerms()
        options = dict(options, milvus_uri=str(tmp_path / "milvus.db"), terms=terms)
        return lambda: {i.kind: terms.recording(i) if i.kind == "sparse" else i
                        for i in open_indexes(name, tmp_path / "idx", dim=DIM, **options)}
    return lambda: {i.kind: i for i in open_indexes(name, tmp_path / "idx", dim=DIM, **options)}


def query_for(rec: ChunkRecord, tokens=None) -> Query:
    return Query("", list(tokens if tokens is not None else rec.tokens[-1:]), rec.vector)


def test_search_finds_the_nearest_vector_and_the_rare_token(backend):
    idx, feed = backend(), Feed()
    recs = [record(i) for i in range(1, 301)]
    for kind in idx:
        idx[kind].apply(feed.changes(recs) if kind == "dense" else Changes(1, iter([recs]), np.zeros(0)))
    q = query_for(recs[41])
    assert idx["dense"].search(q, 5).ids[0] == 42
    assert list(idx["sparse"].search(q, 5).ids) == [42]  # only chunk 42 has the token only42
    assert [i.count() for i in idx.values()] == [300, 300]


def apply_all(idx, changes_list):
    for kind, index in idx.items():
        for upserts, deletes, gen in changes_list:
            index.apply(Changes(gen, iter([upserts] if upserts else []), np.array(deletes, dtype=np.int64)))


def test_deleted_chunks_are_never_returned_and_reopening_keeps_the_state(backend):
    idx = backend()
    recs = [record(i) for i in range(1, 101)]
    apply_all(idx, [(recs, [], 1), ([], [42, 43], 2)])
    q = query_for(recs[41])
    for index in idx.values():
        assert 42 not in index.search(q, 50).ids and index.count() == 98
        assert index.saved_generation() == 2
    again = backend()  # a new process: everything from disk
    for kind, index in again.items():
        assert index.count() == 98 and 42 not in index.search(q, 100).ids
        assert np.array_equal(index.search(q, 10).ids, idx[kind].search(q, 10).ids)


def test_a_filter_returns_k_hits_whenever_k_chunks_pass_it(backend):
    idx = backend()
    recs = [record(i, date="2024-05-0%d" % (i % 9 + 1) if i % 50 == 0 else "2023-01-01",
                   source="臨江日報" if i % 3 == 0 else "晚报") for i in range(1, 3001)]
    apply_all(idx, [(recs, [], 1)])
    in_may = {r.id for r in recs if r.date.startswith("2024-05")}
    assert len(in_may) == 60
    where = Filter(since="2024-05-01", until="2024-05-31")
    q = Query("", ["w1", "w2", "w3"], recs[0].vector)
    for index in idx.values():
        got = index.search(q, 10, where).ids
        assert len(got) == 10 and set(got) <= in_may
        assert set(index.search(q, 100, where).ids) <= in_may
    dense = idx["dense"].search(q, 100, where).ids
    assert sorted(dense) == sorted(in_may)  # every passing chunk, when fewer than k pass
    by_source = idx["dense"].search(q, 20, Filter(source="臨江")).ids
    assert len(by_source) == 20 and all(i % 3 == 0 for i in by_source)


def test_undated_chunks_pass_a_date_filter_only_when_asked(backend):
    idx = backend()
    recs = [record(1, date=None), record(2, date="2024-03-02"), record(3, date="2022-01-01")]
    apply_all(idx, [(recs, [], 1)])
    q = Query("", ["w1"], recs[0].vector)
    strict = Filter(since="2024-01-01")
    loose = Filter(since="2024-01-01", include_undated=True)
    assert set(idx["dense"].search(q, 5, strict).ids) == {2}
    assert set(idx["dense"].search(q, 5, loose).ids) == {1, 2}


def test_many_small_commits_merge_into_few_segments_with_the_same_results(backend, tmp_path):
    idx = backend()
    if not hasattr(idx["dense"], "view"):
        pytest.skip("merging segments is the local backend's")
    recs = [record(i) for i in range(1, 401)]
    batches = [(recs[i:i + 16], [recs[i].id] if i else [], n + 1) for n, i in enumerate(range(0, 400, 16))]
    apply_all(idx, batches)
    from newsrag.index.factory import open_indexes as fresh

    whole = {i.kind: i for i in fresh("local", tmp_path / "whole", dim=DIM, ann="flat")}
    survivors = [r for r in recs if r.id not in {b[1][0] for b in batches if b[1]}]
    apply_all(whole, [(survivors, [], 1)])
    state = idx["dense"].view()
    assert len(state.segments) < len(batches)  # merged as it went
    for i in (5, 77, 250):
        q = query_for(recs[i], tokens=recs[i].tokens)
        a, b = idx["sparse"].search(q, 10), whole["sparse"].search(q, 10)
        assert np.array_equal(a.ids, b.ids) and np.allclose(a.scores, b.scores, atol=1e-5)
        assert np.array_equal(idx["dense"].search(q, 10).ids, whole["dense"].search(q, 10).ids)


def test_a_reader_catches_up_in_memory_without_touching_the_disk(backend):
    idx = backend()
    recs = [record(i) for i in range(1, 51)]
    apply_all(idx, [(recs[:25], [], 1)])
    for index in idx.values():
        index.apply(Changes(2, iter([recs[25:]]), np.zeros(0, np.int64)), persist=False)
        assert index.saved_generation() == 1
        # A local view replays in memory; a shared server is never written by a reader.
        assert (index.generation(), index.count()) == ((2, 50) if index.replays_in_memory else (1, 25))
    assert backend()["dense"].count() == 25


def test_scores_for_given_ids_match_the_search_scores(backend):
    idx = backend()
    recs = [record(i) for i in range(1, 201)]
    apply_all(idx, [(recs[:120], [], 1), (recs[120:], [7], 2)])
    q = query_for(recs[9], tokens=recs[9].tokens)
    for index in idx.values():
        ranked = index.search(q, 10)
        assert np.allclose(index.scores(q, ranked.ids), ranked.scores, atol=1e-5)
        assert not index.scores(q, [7, 10_000]).any()  # deleted, never stored


def test_bm25_scores_equal_bm25s_over_the_same_live_chunks(tmp_path):
    import bm25s

    from newsrag.index.bm25_sparse import BM25_B, BM25_K1, BM25Index

    recs = [record(i) for i in range(1, 61)]
    index = BM25Index(tmp_path / "sparse")
    index.apply(Changes(1, iter([recs[:30]]), np.zeros(0, np.int64)))
    index.apply(Changes(2, iter([recs[30:]]), np.array([3, 4, 5], dtype=np.int64)))
    live = [r for r in recs if r.id not in (3, 4, 5)]
    ref = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    ref.index([r.tokens for r in live], show_progress=False)
    query = recs[2].tokens[:3] + ["w2", "w2", "only9"]  # words of a deleted chunk count only where alive
    want = ref.get_scores([t for t in query if t in ref.vocab_dict])
    got = index.scores(Query("", query), [r.id for r in live])
    assert np.allclose(got, want, atol=1e-5)


def test_bm25_scores_equal_the_local_index_s_after_adds_and_deletes(backend, tmp_path):
    """Every backend ranks BM25 as the local index does: its k1 and b, IDF over the live chunks."""
    from newsrag.index.bm25_sparse import BM25Index

    idx, local = backend(), BM25Index(tmp_path / "reference")
    recs = [record(i) for i in range(1, 151)]
    for index in (idx["sparse"], local):
        index.apply(Changes(1, iter([recs[:100]]), np.zeros(0, np.int64)))
        index.apply(Changes(2, iter([recs[100:]]), np.array([3, 4, 5, 60], dtype=np.int64)))
    for q in (query_for(recs[9], tokens=recs[9].tokens), Query("", ["w1", "w1", "w7", "only3", "only77"])):
        got, want = idx["sparse"].search(q, 20), local.search(q, 20)
        assert np.array_equal(got.ids, want.ids) and np.allclose(got.scores, want.scores, atol=1e-4)
        assert np.allclose(idx["sparse"].scores(q, [1, 3, 77, 140]), local.scores(q, [1, 3, 77, 140]), atol=1e-4)


def test_a_full_tier_merges_even_when_all_of_it_would_exceed_the_cap(tmp_path, monkeypatch):
    from newsrag.index import segments

    monkeypatch.setattr(segments, "MAX_SEGMENT_ROWS", 100)
    idx = {i.kind: i for i in open_indexes("local", tmp_path / "idx", dim=DIM)}
    recs = [record(i) for i in range(1, 11 * 12 + 1)]
    apply_all(idx, [(recs[i:i + 11], [], n + 1) for n, i in enumerate(range(0, len(recs), 11))])
    for index in idx.values():
        sizes = sorted(len(s) for s in index.view().segments)
        assert max(sizes) == 99 and len(sizes) == 4  # nine of the eleven-row segments became one
        assert index.count() == len(recs)


def test_ids_lists_each_live_chunk_and_reset_forgets_everything(backend):
    idx = backend()
    recs = [record(i) for i in range(1, 51)]
    apply_all(idx, [(recs, [], 1), ([], [7, 8], 2)])
    for index in idx.values():
        assert sorted(index.ids().tolist()) == [i for i in range(1, 51) if i not in (7, 8)]
    for index in idx.values():  # Milvus shares one collection: each reset empties both, each replay fills both
        index.reset()
        assert index.saved_generation() == 0 and len(index.ids()) == 0
        index.apply(Changes(3, iter([recs[:5]]), np.zeros(0, np.int64)))
        assert sorted(index.ids().tolist()) == [1, 2, 3, 4, 5] and index.saved_generation() == 3
    idx = backend()  # reopened: the reset state was saved
    assert all(sorted(i.ids().tolist()) == [1, 2, 3, 4, 5] for i in idx.values())


def test_a_replay_in_reading_batches_builds_full_segments(tmp_path, monkeypatch):
    from newsrag.index import segments

    monkeypatch.setattr(segments, "MAX_SEGMENT_ROWS", 100)
    recs = [record(i) for i in range(1, 251)]
    for index in open_indexes("local", tmp_path / "idx", dim=DIM):
        # 250 rows read from SQLite 30 at a time: two full segments and the rest, no merge needed
        index.apply(Changes(1, iter([recs[i:i + 30] for i in range(0, len(recs), 30)]), np.zeros(0, np.int64)))
        assert [len(s) for s in index.view().segments] == [100, 100, 50]
        assert sorted(index.ids().tolist()) == list(range(1, 251))


def test_searches_report_the_spread_of_their_scores_over_the_allowed_chunks(backend):
    """Fusion standardises each retriever by its spread over every chunk the filter allows, not
    over its few candidates: each backend reports it (the dense one here from all 400 vectors)."""
    idx = backend()
    recs = [record(i, date="2024-05-01" if i % 10 == 0 else "2023-01-01") for i in range(1, 401)]
    apply_all(idx, [(recs, [], 1)])
    q = Query("", ["w1", "w2", "w3"], recs[0].vector)
    for index in idx.values():
        ranked = index.search(q, 10)
        assert ranked.std > 0 and ranked.mean < ranked.scores[-1]  # the mean of all, not of the top 10
    sims = np.array([r.vector @ q.vector for r in recs])
    dense = idx["dense"].search(q, 10)
    assert abs(dense.mean - sims.mean()) < 1e-3 and abs(dense.std - sims.std()) < 1e-3
    in_may = np.array([r.vector @ q.vector for r in recs if r.date == "2024-05-01"])
    may = idx["dense"].search(q, 10, Filter(since="2024-05-01"))
    assert abs(may.mean - in_may.mean()) < 1e-3 and abs(may.std - in_may.std()) < 1e-3

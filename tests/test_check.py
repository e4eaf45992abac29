"""``newsrag check [--repair]``: each way SQLite, the search structures and the duplicate links can
disagree is found (exit 1, one line naming the part) and rebuilt from SQLite (then exit 0, and the
searches are what they were)."""
import numpy as np
import pytest

from newsrag import Archive
from newsrag.cli import main
from newsrag.index.base import Changes, ChunkRecord

QUESTIONS = ["垃圾分类试点", "地铁5号线", "人才资助", "龙舟赛"]


def results(index):
    with Archive.open(index) as a:
        return [[(h.article_id, h.text) for h in a.search(q, k=5, mode=m)]
                for q in QUESTIONS for m in ("hybrid", "bm25", "dense")]


def check(index, *flags):
    return main(["check", "--index", str(index), *flags])


def _index(a, kind):
    return next(i for i in a.indexes if i.kind == kind)


def _record(a, chunk_id) -> ChunkRecord:
    return next(r for batch in a.store.changes_since(0).upserts for r in batch if r.id == chunk_id)


def _one_duplicate(a):
    return next(r for r in a.list_articles() if r["canonical_id"])


# Each damages one part behind the archive's back, as a bug, a bad disk or a hand would.
def lose_a_dense_chunk(a):
    gen, first = a.store.generation(), int(a.store.live_chunk_ids()[0])
    _index(a, "dense").apply(Changes(gen, iter([]), np.array([first])))


def add_a_stray_sparse_chunk(a):
    rec = _record(a, int(a.store.live_chunk_ids()[0]))
    stray = ChunkRecord(10 ** 9, rec.tokens, rec.vector, rec.date, rec.source_norm)
    _index(a, "sparse").apply(Changes(a.store.generation(), iter([[stray]]), np.zeros(0, np.int64)))


def hold_a_dense_chunk_twice(a):
    rec = _record(a, int(a.store.live_chunk_ids()[-1]))
    _index(a, "dense").apply(Changes(a.store.generation(), iter([[rec]]), np.zeros(0, np.int64)))


def claim_a_later_generation(a):  # a generation behind is caught up by the open; one ahead is not
    import json

    path = _index(a, "sparse").folder / "state.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps(dict(state, generation=state["generation"] + 5)))


def lose_the_lsh_keys(a):
    with a.store.transaction() as db:
        db.execute("DELETE FROM lsh")


def give_a_duplicate_band_keys(a):
    dup = a.store.article(_one_duplicate(a)["id"])
    with a.store.transaction():
        a.store._lsh_add(dup["id"], np.frombuffer(dup["minhash"], np.uint64))


def lose_an_articles_chunks(a):
    aid = next(r["id"] for r in a.list_articles() if not r["canonical_id"])
    with a.store.transaction() as db:  # no tombstones: the search structures still hold them
        db.execute("DELETE FROM chunks WHERE article_id=?", (aid,))


def strand_a_duplicate(a):
    canonical = _one_duplicate(a)["canonical_id"]
    with a.store.transaction() as db:  # its canonical row goes; its chunks stay behind
        db.execute("DELETE FROM articles WHERE id=?", (canonical,))


DAMAGE = {  # damage -> (the parts a finding names, whether the searches come back the same)
    lose_a_dense_chunk: ({"dense"}, True),
    add_a_stray_sparse_chunk: ({"sparse"}, True),
    hold_a_dense_chunk_twice: ({"dense"}, True),
    claim_a_later_generation: ({"sparse"}, True),
    lose_the_lsh_keys: ({"lsh"}, True),
    give_a_duplicate_band_keys: ({"lsh"}, True),
    lose_an_articles_chunks: ({"articles", "dense", "sparse"}, True),
    strand_a_duplicate: ({"articles", "lsh"}, False),
}


def test_a_fresh_index_is_consistent(sample_copy, capsys):
    assert check(sample_copy) == 0
    out = capsys.readouterr().out
    assert out.startswith("newsrag: consistent:") and "21 articles" in out
    with Archive.open(sample_copy) as a:
        report = a.check()
    assert report["ok"] and report["findings"] == [] and report["chunks"] == len(a.store.live_chunk_ids())


@pytest.mark.parametrize("damage", list(DAMAGE), ids=lambda f: f.__name__)
def test_each_disagreement_is_found_and_repaired(sample_copy, capsys, damage):
    parts, same_results = DAMAGE[damage]
    before = results(sample_copy)
    with Archive.open(sample_copy) as a:
        damage(a)
    capsys.readouterr()

    assert check(sample_copy) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("newsrag: inconsistent:") and "--repair" in lines[-1]
    named = {line.split(": ")[2] for line in lines[:-1]}
    assert named == parts, lines

    assert check(sample_copy, "--repair") == 0
    out = capsys.readouterr().out
    assert "newsrag: repaired:" in out and "(after repair)" in out
    assert check(sample_copy) == 0  # a fresh process agrees
    if same_results:
        assert results(sample_copy) == before


def test_a_stranded_duplicate_takes_over_its_story(sample_copy):
    with Archive.open(sample_copy) as a:
        dup = _one_duplicate(a)
        strand_a_duplicate(a)
        report = a.check(repair=True)
        assert report["ok"] and report["findings"]
        assert a.article(dup["id"])["canonical_id"] is None
        assert dup["id"] in {h.article_id for h in a.search(dup["title"], k=5)}


def test_check_json_and_a_read_only_index_cannot_be_repaired(sample_copy, capsys, monkeypatch):
    import json

    assert check(sample_copy, "--json") == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    with Archive.open(sample_copy) as a:
        lose_the_lsh_keys(a)
    monkeypatch.setenv("NEWSRAG_READ_ONLY", "1")
    assert check(sample_copy) == 1
    assert check(sample_copy, "--repair") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is read-only" in err[0]

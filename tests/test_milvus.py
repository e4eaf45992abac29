"""The Milvus backend (Milvus Lite here) through the CLI: the same commands, another engine."""
import importlib.util
import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (importlib.util.find_spec("pymilvus") and importlib.util.find_spec("milvus_lite")),
    reason="needs newsrag[milvus]")]


def cli(*argv) -> tuple[int, str, str]:
    # A process per command, as a user runs them: Milvus Lite serves one process at a time.
    p = subprocess.run([sys.executable, "-m", "newsrag.cli", *map(str, argv)], capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_ingest_search_delete_search_through_the_cli(tmp_path, records_file, crawled_file):
    idx = tmp_path / "idx"
    code, _, err = cli("ingest", records_file, crawled_file, "--index", idx, "--backend", "milvus", "-q")
    assert code == 0 and "5 added" in err
    assert json.loads((idx / "manifest.json").read_text())["backend"] == "milvus"
    assert (idx / "milvus.db").exists() and not (idx / "index").exists()

    code, out, _ = cli("search", "松江博物馆夜场开放到几点", "--index", idx, "-k", "3", "--json")
    hits = json.loads(out)
    assert code == 0 and hits[0]["article_id"] == "t-004" and set(hits[0]["retrievers"]) == {"bm25", "dense"}
    code, out, _ = cli("search", "松江", "--index", idx, "--since", "2024-04-01", "--source", "松江日報", "--json")
    assert [h["article_id"] for h in json.loads(out)] == ["t-003"]  # source in either script, date inside

    code, _, err = cli("delete", "t-004", "--index", idx)
    assert code == 0 and "deleted t-004" in err
    code, out, _ = cli("search", "松江博物馆夜场开放到几点", "--index", idx, "-k", "5", "--json")
    assert "t-004" not in [h["article_id"] for h in json.loads(out)]
    code, out, _ = cli("stats", "--index", idx, "--json")
    assert json.loads(out)["articles"] == 4 and json.loads(out)["backend"] == "milvus"

    code, _, err = cli("ingest", records_file, "--index", idx, "--backend", "local", "-q")
    assert code != 0 and "built with backend 'milvus'" in err and "\n" not in err.strip()


def test_a_collection_of_another_layout_is_rebuilt_from_sqlite(tmp_path, records_file):
    """A collection made by another release (its schema property differs) is dropped when opened
    and replayed from SQLite, as a damaged local segment is: searches answer as before."""
    from pymilvus import MilvusClient

    from newsrag import Archive

    idx = tmp_path / "idx"
    with Archive.open(idx, backend="milvus") as a:
        a.ingest([records_file])
        before = [h.chunk_id for h in a.search("松江博物馆夜场", k=3)]
        name = json.loads((idx / "manifest.json").read_text())["collection"]
    client = MilvusClient(str(idx / "milvus.db"))
    client.alter_collection_properties(name, properties={"newsrag.schema": "1"})
    client.close()
    with Archive.open(idx) as a:
        dense = next(i for i in a.indexes if i.kind == "dense")
        props = dense.collection.client.describe_collection(name)["properties"]
        assert props["newsrag.schema"] != "1" and int(props["newsrag.generation"]) == a.store.generation()
        assert [h.chunk_id for h in a.search("松江博物馆夜场", k=3)] == before
        assert a.check()["ok"]


def test_bm25_ranks_as_the_local_index_with_the_store_s_statistics(tmp_path, records_file, crawled_file):
    """Milvus's own BM25 (Lite: k1 1.2, b 0.75, statistics per segment) only finds the candidates;
    the document frequencies the store keeps through adds and deletes score them: the local ranking."""
    from newsrag import Archive

    archives = {b: Archive.open(tmp_path / b, backend=b) for b in ("local", "milvus")}
    try:
        for a in archives.values():
            a.ingest([records_file])
            a.delete("t-004")
            a.ingest([crawled_file])
        for q in ("松江博物馆夜场开放到几点", "人才引进政策", "松江 日报"):
            got = {b: [(h.chunk_id, round(h.score, 4)) for h in a.search(q, k=5, mode="bm25")]
                   for b, a in archives.items()}
            assert got["milvus"] == got["local"] and got["local"]
        # The milvus store counted as it went; the local one was never asked to and scans: the same figures.
        stores = {b: a.store for b, a in archives.items()}
        docs = [r.tokens for batch in stores["local"].changes_since(0).upserts for r in batch]
        words = ["松江", "博物馆", "夜场", "不在其中的词"]
        want = (len(docs), sum(map(len, docs)) / len(docs),
                {w: sum(w in d for d in docs) for w in words if any(w in d for d in docs)})
        assert stores["milvus"].term_stats(words) == stores["local"].term_stats(words) == want
    finally:
        for a in archives.values():
            a.close()

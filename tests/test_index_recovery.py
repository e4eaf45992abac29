"""The search structures after a crash, and an index made by the previous release.

SQLite is the truth; a kill between its commit and the index update, or in the
middle of that update, loses nothing: the next open replays what is missing.
"""
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from newsrag import Archive

from test_crash import write_feed

QUESTIONS = ["哪个镇开通了公交线路", "图书馆藏书", "龙舟赛", "垃圾分类投放点"]


def results(index):
    with Archive.open(index) as a:
        return [[(h.article_id, h.chunk_id) for h in a.search(q, k=5, mode=m)]
                for q in QUESTIONS for m in ("hybrid", "bm25", "dense")]


def run_killed(index, feed, where: str) -> None:
    """Ingest ``feed`` in a child process that SIGKILLs itself at ``where``."""
    script = textwrap.dedent(f"""
        import os, signal
        import newsrag.archive, newsrag.index.segments
        from newsrag import Archive
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        a = Archive.open({str(index)!r})
        if {where!r} == "after-commit":
            newsrag.archive.catch_up = die          # SQLite committed, the indexes never hear of it
        else:
            newsrag.index.segments.atomic_write_text = die   # segment files written, state.json not
        a.ingest([{str(feed)!r}])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["after-commit", "mid-update"])
def test_a_kill_between_commit_and_index_update_is_caught_up_on_open(tmp_path, where):
    feed = tmp_path / "feed.jsonl"
    write_feed(feed, n=24)
    first = {"id": "first", "title": "东湖镇新闻", "date": "2024-03-01", "text": "东湖镇举办龙舟赛。" * 3}
    for name in ("reference", "killed"):  # the same history, so chunk ids match
        with Archive.open(tmp_path / name) as a:  # a first batch, fully applied
            a.ingest([first])
            a.delete("first")
    with Archive.open(tmp_path / "reference") as a:
        a.ingest([feed])
    index = tmp_path / "killed"
    run_killed(index, feed, where)
    db = sqlite3.connect(index / "archive.sqlite3")
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 24  # committed before the kill
    state = json.loads((index / "index" / "dense" / "state.json").read_text())
    gen = int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
    assert state["generation"] < gen  # the kill left the search structures behind
    db.close()
    assert results(index) == results(tmp_path / "reference")
    state = json.loads((index / "index" / "dense" / "state.json").read_text())
    assert state["generation"] == gen  # and the open that caught up saved it


def test_an_index_of_the_previous_release_is_migrated_in_place(sample_copy):
    expected = results(sample_copy)
    # Turn the index back into what the previous release wrote: no change log, no LSH table,
    # its search structures in derived-N folders, schema 1 in the manifest.
    db = sqlite3.connect(sample_copy / "archive.sqlite3")
    db.executescript("DROP INDEX chunks_gen; ALTER TABLE chunks DROP COLUMN gen; DROP TABLE tombstones; "
                     "DROP TABLE lsh;")
    db.close()
    shutil.rmtree(sample_copy / "index")
    (sample_copy / "derived-3").mkdir()
    manifest = json.loads((sample_copy / "manifest.json").read_text())
    del manifest["backend"]
    (sample_copy / "manifest.json").write_text(json.dumps(dict(manifest, schema=1)))

    assert results(sample_copy) == expected
    manifest = json.loads((sample_copy / "manifest.json").read_text())
    assert manifest["schema"] == 2 and manifest["backend"] == "local"
    assert not list(sample_copy.glob("derived-*"))
    with Archive.open(sample_copy) as a:  # near-duplicates are still found through the rebuilt LSH
        dup = next(r for r in a.list_articles() if r["canonical_id"])
        original = a.article(dup["id"])
        report = a.ingest([{"id": "again", "title": original["title"], "text": original["text"] + "（转载）"}])
        assert report.duplicates == 1

"""Issue #11, faults: a full disk, a read-only index, a folder deleted under a running server and
damaged derived files. Each is one line (or a recovery) and the last good state stays whole."""
import errno
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import requests

from newsrag import Archive
from newsrag.api import create_app
from newsrag.cli import main
from newsrag.index import storage
from newsrag.index.faiss_dense import DenseSegment
from newsrag.index.sqlite_store import SQLiteStore
from newsrag.index.storage import StorageError

from test_api import TIMEOUT, running

QUESTION = "垃圾分类试点扩大到多少个社区"
NEW = [{"id": f"new-{i}", "title": f"东湖镇第{i}次工作例会", "date": "2024-06-01", "source": "测试日报",
        "text": f"东湖镇第{i}次工作例会决定新建{i + 2}座口袋公园，预计投入资金{i * 40 + 90}万元。"} for i in range(3)]


def snapshot(index):
    """What a reader sees: the article count and a search's hits."""
    with Archive.open(index) as a:
        return a.stats()["articles"], [(h.article_id, h.text) for h in a.search(QUESTION, k=5)]


def files(index):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(index).rglob("*") if p.is_file()}


def disk_full(*args, **kwargs):
    raise sqlite3.OperationalError("database or disk is full")  # what SQLite raises on ENOSPC


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[-1]) if args else None)


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if line.startswith("newsrag: error:")]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err
    return errors[0]


@pytest.mark.parametrize("classified, kind", [
    (sqlite3.OperationalError("database or disk is full"), storage.FULL),
    (OSError(errno.ENOSPC, "No space left on device"), storage.FULL),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), storage.FULL),
    (sqlite3.OperationalError("attempt to write a readonly database"), storage.READ_ONLY),
    (OSError(errno.EROFS, "Read-only file system"), storage.READ_ONLY),
    (OSError(errno.EACCES, "Permission denied"), storage.READ_ONLY),
    (ValueError("not ours"), None),
    (sqlite3.OperationalError("no such table: x"), None),
])
def test_what_the_disk_says_is_classified(tmp_path, classified, kind):
    (tmp_path / "archive.sqlite3").touch()
    found = storage.classify(classified, tmp_path)
    assert (found.kind if found else None) == kind
    assert storage.classify(OSError(errno.EIO, "I/O"), tmp_path / "elsewhere").kind == storage.GONE


def test_a_full_disk_during_ingest_is_one_line_and_the_index_keeps_its_content(
        sample_copy, records_file, capsys, monkeypatch):
    before = snapshot(sample_copy)
    monkeypatch.setattr(SQLiteStore, "put_chunks", disk_full)
    assert main(["ingest", str(records_file), "--index", str(sample_copy), "-q"]) == 2
    assert "no space left on device" in one_error_line(capsys)
    monkeypatch.undo()
    assert snapshot(sample_copy) == before
    assert main(["check", "--index", str(sample_copy)]) == 0


def test_a_full_disk_while_saving_segments_is_caught_up_later(sample_copy, monkeypatch):
    before = snapshot(sample_copy)
    monkeypatch.setattr(DenseSegment, "save", no_space)
    with Archive.open(sample_copy) as a, pytest.raises(StorageError) as e:
        a.ingest(NEW)  # SQLite commits; the dense segment cannot be written
    assert e.value.kind == storage.FULL and "\n" not in str(e.value)
    assert not list((sample_copy / "index" / "dense").glob(".*.tmp"))  # no half-written state left
    monkeypatch.undo()
    with Archive.open(sample_copy) as a:  # the open catches the structures up
        assert a.stats()["articles"] == before[0] + 3
        assert a.search("口袋公园", k=1)[0].article_id.startswith("new-")
        assert a.check()["ok"]


def test_a_full_disk_is_a_507_and_the_server_keeps_answering(sample_copy, monkeypatch):
    with Archive.open(sample_copy) as archive, running(create_app(archive, ui=False)) as url:
        monkeypatch.setattr(archive.store, "put_chunks", disk_full)
        r = requests.post(url + "/api/articles", json={"records": NEW}, timeout=TIMEOUT)
        assert r.status_code == 507 and "no space left" in r.json()["detail"]
        assert "\n" not in r.json()["detail"]
        r = requests.post(url + "/api/search", json={"question": QUESTION}, timeout=TIMEOUT)
        assert r.status_code == 200 and r.json()["hits"]


def test_a_read_only_index_answers_and_refuses_writes(sample_copy, records_file, capsys, monkeypatch):
    before, unchanged = snapshot(sample_copy), files(sample_copy)
    monkeypatch.setenv("NEWSRAG_READ_ONLY", "1")
    assert main(["search", QUESTION, "--index", str(sample_copy)]) == 0
    assert main(["ask", QUESTION, "--index", str(sample_copy)]) == 0
    assert "[1]" in capsys.readouterr().out  # a cited answer
    assert main(["ingest", str(records_file), "--index", str(sample_copy), "-q"]) == 2
    assert "is read-only" in one_error_line(capsys)
    with Archive.open(sample_copy) as a:
        victim = a.list_articles(limit=1)[0]["id"]
        with pytest.raises(StorageError, match="is read-only"):
            a.delete(victim)
        assert a.article(victim) is not None
    assert files(sample_copy) == unchanged  # nothing written, not even the lock file
    monkeypatch.delenv("NEWSRAG_READ_ONLY")
    assert snapshot(sample_copy) == before


def test_a_folder_that_may_not_be_written_opens_read_only(sample_copy, monkeypatch):
    """chmod a-w stops everyone but root; as root (the tests' usual user) os.access is told so."""
    with Archive.open(sample_copy) as a:  # a commit the saved structures have not applied
        with a.store.transaction():
            pass
    os.chmod(sample_copy, 0o555)
    try:
        if os.geteuid() == 0:
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode == os.W_OK
                                and Path(p).resolve().is_relative_to(sample_copy.resolve()) else real(p, mode, **kw))
        with Archive.open(sample_copy) as a:
            assert a.settings.read_only
            assert a.search(QUESTION, k=3)  # the reader replays the missing generation in memory
            with pytest.raises(StorageError, match="is read-only"):
                a.ingest(NEW)
    finally:
        os.chmod(sample_copy, 0o755)


def test_an_index_deleted_under_a_running_server_is_a_503_per_request(sample_copy, caplog):
    with Archive.open(sample_copy) as archive, running(create_app(archive, ui=False)) as url:
        assert requests.post(url + "/api/search", json={"question": QUESTION}, timeout=TIMEOUT).ok
        shutil.rmtree(sample_copy)
        for method, path, body in [("post", "/api/search", {"question": QUESTION}),
                                   ("post", "/api/ask", {"question": QUESTION}),
                                   ("post", "/api/articles", {"records": NEW}),
                                   ("get", "/api/stats", None), ("get", "/healthz", None),
                                   ("post", "/api/search", {"question": QUESTION})]:
            r = getattr(requests, method)(url + path, json=body, timeout=TIMEOUT)
            assert r.status_code == 503, (path, r.text)
            detail = r.json()["detail"]
            assert "is gone" in detail and "\n" not in detail
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _scramble(path: Path) -> None:  # the same size, other bytes: only loading it tells
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, path.stat().st_size, dtype=np.uint8)))


@pytest.mark.parametrize("damage, pattern", [
    (_truncate, "index/dense/*.faiss"), (_truncate, "index/dense/state.json"),
    (_truncate, "index/sparse/*.bm25.npz"), (lambda p: p.unlink(), "index/sparse/*.vocab.json"),
    (_scramble, "index/dense/*.faiss"), (_scramble, "index/sparse/*.bm25.npz")], ids=["truncated-faiss", "truncated-state", "truncated-bm25",
                                              "missing-vocab", "scrambled-faiss",
                                              "scrambled-bm25"])
def test_a_damaged_derived_file_is_rebuilt_from_sqlite(sample_copy, damage, pattern):
    with Archive.open(sample_copy) as a:
        expected = [[(h.article_id, h.text) for h in a.search(q, k=5, mode=m)]
                    for q in (QUESTION, "地铁") for m in ("hybrid", "bm25", "dense")]
    for p in sample_copy.glob(pattern):
        damage(p)
    with Archive.open(sample_copy) as a:
        got = [[(h.article_id, h.text) for h in a.search(q, k=5, mode=m)]
               for q in (QUESTION, "地铁") for m in ("hybrid", "bm25", "dense")]
        assert got == expected
        report = a.check(repair=True)  # a same-size scramble is found here, the rest at the open
        assert report["ok"], report
    with Archive.open(sample_copy) as a:
        assert a.check()["ok"]


def test_an_ingest_over_a_scrambled_segment_rebuilds_it_instead_of_failing(sample_copy):
    for p in sample_copy.glob("index/dense/*.faiss"):
        _scramble(p)  # the same size: the open does not notice, the writer's merge or load does
    with Archive.open(sample_copy) as a:
        assert a.ingest(NEW).added == 3
        assert a.search("口袋公园", k=1)[0].article_id.startswith("new-")
        found = a.check(repair=True)  # the saved segment is still damaged: check names it, repair rebuilds
        assert found["findings"] and found["ok"], found
    with Archive.open(sample_copy) as a:
        assert a.check()["ok"]


def test_a_writer_rebuilds_a_structure_that_fails_to_apply(sample_copy):
    """A saved segment that fails to load while a writer merges it: rebuilt from SQLite, not an error."""
    from newsrag.index.factory import catch_up

    with Archive.open(sample_copy) as a:
        before = [(h.article_id, h.text) for h in a.search(QUESTION, k=5)]
        dense = next(i for i in a.indexes if i.kind == "dense")
        with a.store.transaction():
            pass  # a generation for the writer to catch up with
        real, failed = dense.apply, []

        def flaky(changes, persist=True):
            if not failed:
                failed.append(True)
                raise RuntimeError("Error in faiss::read_index: bad magic")
            return real(changes, persist)

        dense.apply = flaky
        with a.store.writer():
            catch_up(a.store, a.indexes, persist=True)
        assert failed and dense.saved_generation() == a.store.generation()
        assert a.check()["ok"]
        assert [(h.article_id, h.text) for h in a.search(QUESTION, k=5)] == before

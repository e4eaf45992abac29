"""Briefings over the sample archive with the extractive default."""
import json
import re

from newsrag import Archive
from newsrag.cli import main
from newsrag.text import normalize


def test_briefing_themes_timeline_and_citations(sample_index):
    with Archive.open(sample_index) as a:
        b = a.brief(since="2024-01-01", until="2024-06-30")
        assert b.articles == 20 and b.duplicates_folded == 1
        assert len([t for t in b.themes if not t.other]) >= 3
        cited = {c.n: c for c in b.citations}
        for t in b.themes:
            if t.other:
                assert not t.summary and t.timeline and t is b.themes[-1]
                continue
            assert t.headline and t.summary and "[?]" not in t.summary and t.keywords
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
        md = b.to_markdown()
        assert "没有相关文章" in md and "时间范围：2030-01-01 — 2030-12-31" in md
        # nothing matched: said plainly, without counts of what was not briefed
        md = a.brief("火星基地").to_markdown()
        assert "没有找到关于「火星基地」的文章" in md and "0 篇" not in md and "转载" not in md, md


# The sample archive's stories, by what they are about (from their headlines), by publication
# date (one article a day; files get ids from their content).
SAMPLE_STORIES = {
    "lantern festival": "01-05 02-26",
    "waste sorting": "01-10 04-18 05-09 06-28",
    "schools": "01-18 02-27 03-28 06-05",
    "metro and buses": "01-26 03-20 04-25 06-18",
    "talent": "03-12 03-13 04-10 05-16 06-24",
    "museum": "05-18",
    "dragon boat race": "06-11",
}


def test_themes_hold_together_and_the_rest_is_other(sample_index):
    with Archive.open(sample_index) as a:
        on = {f"2024-{d}": s for s, days in SAMPLE_STORIES.items() for d in days.split()}
        story = {r["id"]: on[r["date"]] for r in a.list_articles()}
        b = a.brief()
        themes = [t for t in b.themes if not t.other]
        for t in themes:
            # one story per theme: no lantern festival among the waste sorting, no fines among the buses
            assert len({story[i] for i in t.article_ids}) == 1, (t.headline, t.article_ids)
            # its keywords are what its articles say
            texts = [normalize(a.article(i)["title"] + a.article(i)["text"]) for i in t.article_ids]
            assert sum(t.keywords[0] in x for x in texts) >= len(texts) / 2, (t.keywords, t.headline)
        other = [t for t in b.themes if t.other]
        # stories alike to no other are not forced into a theme
        assert other and other[0].headline == "其他"
        assert {"museum", "dragon boat race"} <= {story[i] for i in other[0].article_ids}
        assert sum(len(t.article_ids) for t in themes) >= 14  # … and most stories are in one
        assert 0.5 <= b.coherence <= 1.0
        md = b.to_markdown()
        assert "## " + str(len(b.themes)) + ". 其他" in md and "关键词：" in md
        # the period is the articles' own when none was asked
        assert "时间范围：2024-01-05 — 2024-06-28" in md
        assert "时间范围：2024-03-01 — 2024-06-28" in a.brief(since="2024-03-01").to_markdown()


def test_previous_clustering_stays_callable(sample_index):
    with Archive.open(sample_index) as a:
        b = a.brief(method="kmeans")
        assert not any(t.other for t in b.themes) and sum(len(t.article_ids) for t in b.themes) == 20


def test_folded_copies_counted_only_for_the_articles_briefed(sample_index):
    with Archive.open(sample_index) as a:
        assert a.brief("人才").duplicates_folded == 1  # the talent measures, reprinted
        assert a.brief("灯会").duplicates_folded == 0


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


def test_a_topic_with_no_narrower_theme_is_one_theme(sample_index):
    with Archive.open(sample_index) as a:
        b = a.brief("龙舟")  # one story: summarised, not left alone under 其他
        assert b.articles == 1 and len(b.themes) == 1 and not b.themes[0].other and b.themes[0].summary

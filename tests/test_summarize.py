"""One article's summary: the extractive default, Archive.summarize, and the model backends."""
import re

import pytest

from newsrag import Archive
from newsrag.summarize import MAX_TEXT_CHARS, extract, summarize
from newsrag.extractive import ExtractiveGenerator

from conftest import RECORDS
from fakellm import FakeChatServer
from test_generators import tiny_chat_model  # noqa: F401  (a fixture)

# A wire report: dateline and byline first, the story, an aside in parentheses, editor lines last.
WIRE = (
    "2024年3月12日 来源：青溪融媒\n"
    "本报记者 周敏 王小明\n"
    "新华社青溪3月12日电（记者 周敏）\n"
    "青溪区政府今天宣布，全区垃圾分类试点从12个社区扩大到23个社区，覆盖居民约八万户。\n"
    "区城管局表示，新增的11个社区将在四月底前配齐分类投放点（每个小区至少两处），并安排督导员值守。\n"
    "试点社区的厨余垃圾分出率去年达到百分之三十五，高于全市平均水平。\n"
    "区城管局还将对垃圾分类做得好的社区给予奖励。\n"
    "（记者 周敏）\n"
    "责任编辑：欧阳李华\n"
)
_PAREN = re.compile(r"[（(][^（）()]{0,40}[）)]")


def _taken_from(text, s):
    """The summary sentence is the article's own words at the span it names (asides left out)."""
    return s.text.rstrip("。…") in _PAREN.sub("", text[s.start:s.end])


@pytest.mark.parametrize("max_chars", [10, 30, 60, 120, 2000])
def test_within_budget_and_taken_from_where_it_says(max_chars):
    s = summarize(WIRE, ExtractiveGenerator(), max_chars=max_chars)
    assert 0 < len(s.text) <= max_chars and s.max_chars == max_chars
    assert s.text == "".join(x.text for x in s.sentences)
    assert all(_taken_from(WIRE, x) or x.text.endswith("…") for x in s.sentences)
    assert [x.start for x in s.sentences] == sorted(x.start for x in s.sentences)  # article order


def test_bylines_datelines_editor_lines_and_asides_are_never_taken():
    # However much room there is, page furniture adds nothing.
    s = summarize(WIRE, ExtractiveGenerator(), max_chars=2000)
    for furniture in ("2024年", "融媒", "新华社", "3月12日电", "记者", "周敏", "王小明", "编辑", "李华",
                      "（每个小区至少两处）"):
        assert furniture not in s.text, furniture
    assert "23个社区" in s.text


def test_the_story_before_the_first_line_and_no_repeats():
    # The lead is chit-chat; the story is what the article keeps talking about.
    text = ("今天早上天气晴朗，不少市民出门散步。"
            "临江区地铁5号线将于年底前开通运营，地铁5号线全长二十公里。"
            "地铁5号线设车站十二座，地铁5号线开通后从城东到城西只需半小时。"
            "临江区地铁5号线将于年底前开通运营，地铁5号线全长二十公里。")
    s = summarize(text, ExtractiveGenerator(), max_chars=40)
    assert "地铁5号线" in s.text and "天气" not in s.text
    s = summarize(text, ExtractiveGenerator(), max_chars=200)
    assert s.text.count("将于年底前开通运营") == 1  # the repeated sentence, once


def test_the_title_says_what_matters():
    text = ("松江区今年将新建三座公园，总面积四十公顷。"
            "区教育局同时宣布，全区中小学将延长课后服务到下午六点。")
    assert "课后服务" in summarize(text, ExtractiveGenerator(), max_chars=30, title="松江中小学延长课后服务").text
    assert "公园" in summarize(text, ExtractiveGenerator(), max_chars=30, title="松江新建三座公园").text


def test_traditional_script():
    s = summarize(RECORDS[1]["text"], ExtractiveGenerator(), max_chars=40)
    assert "課後服務" in s.text and len(s.text) <= 40


def test_bad_input_is_a_clear_error():
    gen = ExtractiveGenerator()
    with pytest.raises(ValueError, match="empty"):
        summarize("  \n", gen)
    with pytest.raises(ValueError, match="too long"):
        summarize("新闻。" * (MAX_TEXT_CHARS // 3 + 1), gen)
    with pytest.raises(ValueError, match="max_chars must be between"):
        summarize(WIRE, gen, max_chars=5)
    with pytest.raises(ValueError, match="bylines"):
        summarize("（记者 周敏）\n责编：李华", gen)
    assert extract("。。。", 50) == []


def test_archive_summarize_text_or_stored_article(archive):
    hit = archive.search("垃圾分类试点扩大到多少个社区", k=1)[0]
    s = archive.summarize(article_id=hit.article_id, max_chars=80)
    stored = archive.article(hit.article_id)
    assert s.article_id == hit.article_id and s.title == stored["title"] and s.generator == "extractive"
    assert 0 < len(s.text) <= 80 and all(_taken_from(stored["text"], x) for x in s.sentences)
    assert archive.summarize(text=stored["text"], max_chars=80).text == s.text
    assert archive.summarize(text=stored["text"]).max_chars == max(30, min(200, len(stored["text"]) // 5))
    with pytest.raises(KeyError, match="no-such-id"):
        archive.summarize(article_id="no-such-id")
    with pytest.raises(ValueError, match="text or article_id"):
        archive.summarize()
    with pytest.raises(ValueError, match="text or article_id"):
        archive.summarize(text="x", article_id=hit.article_id)


def test_openai_summary_is_traced_and_held_to_the_budget(tmp_path):
    supported = "全区垃圾分类试点从12个社区扩大到23个社区。"
    with FakeChatServer(supported + "全区居民明年都将搬到月球。") as server, \
            Archive.open(tmp_path / "idx", generator="openai", model="m", base_url=server.url) as a:
        s = a.summarize(text=WIRE, max_chars=60, title="青溪扩大垃圾分类试点")
        assert s.generator == "openai:m" and s.text == supported + "全区居民明年都将搬到月球。"
        first, second = s.sentences
        assert first.supported and "扩大到23个社区" in WIRE[first.start:first.end]
        assert not second.supported and second.start is None and s.unsupported == [second.text]
        prompt = server.prompt()
        assert "不超过 60 个字" in prompt and "覆盖居民约八万户" in prompt and "青溪扩大垃圾分类试点" in prompt
        # The model wrote more than the budget: whole sentences that fit, and no more.
        assert a.summarize(text=WIRE, max_chars=30).text == supported


def test_transformers_summary(tmp_path, tiny_chat_model, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with Archive.open(tmp_path / "idx", generator="transformers", model=str(tiny_chat_model),
                      max_new_tokens=16) as a:
        s = a.summarize(text=RECORDS[0]["text"], max_chars=200)
    # a random model writes nonsense, never its end token: every sentence flagged, and cut off
    assert s.generator == f"transformers:{tiny_chat_model}" and s.text.strip() and len(s.text) <= 200
    assert s.truncated and s.sentences and all(not x.supported for x in s.sentences)


@pytest.mark.parametrize("max_chars", [15, 20, 30, 45])
def test_no_fragments_a_clause_leaning_on_its_neighbour_or_a_date_alone(max_chars):
    text = ("3月11日下午，青溪区召开新闻发布会，发布人才引进办法。"
            "试运行结束后，还需通过安全评估，方可正式载客运营。"
            "地铁集团总经理袁晓峰介绍，试运行初期共投入列车12列，高峰时段行车间隔为6分钟。")
    s = summarize(text, ExtractiveGenerator(), max_chars=max_chars)
    assert s.sentences
    for x in s.sentences:
        assert not re.match(r"^(?:还|方可)", x.text) and not re.search(r"(?:结束后|介绍)。$", x.text), x.text
        assert x.text != "3月11日下午。"


def test_a_quotation_is_taken_whole_or_not_at_all():
    # Cut at its commas, the quotation would leave 「不会急于处罚。”」 or an opening “ never closed.
    text = ("青溪区六个社区开始试行垃圾定时定点投放，原有楼道垃圾桶全部撤除。"
            "区城管局副局长赵国栋说：“试点的关键在于居民习惯，前期我们以劝导为主，不会急于处罚。”"
            "根据试点方案，居民需将垃圾分为四类，投放到小区内的集中投放点。")
    for max_chars in (20, 30, 45, 60, 80, 200):
        for s in summarize(text, ExtractiveGenerator(), max_chars=max_chars).sentences:
            assert s.text.count("“") == s.text.count("”"), (max_chars, s.text)
            assert not s.text.startswith(("不会急于处罚", "前期我们")), (max_chars, s.text)
            assert not s.text.endswith("根据试点方案。"), (max_chars, s.text)  # an adverbial alone says nothing

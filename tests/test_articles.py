import csv
import json

import pytest

from newsrag.articles import Article, LoadError, list_files, load_file, parse_date


def load(path):
    return list(load_file(path))


def test_crawled_text_file(crawled_file):
    [a] = load(crawled_file)
    assert isinstance(a, Article)
    assert a.title == "區委常委會會議召開"
    assert "松江新聞網訊" in a.text and "(wǎng)" not in a.text
    assert "（試行）" in a.text and "（記者 林雨桐）" in a.text
    assert "責編" not in a.text and a.meta["editor"] == "何曉雲"
    assert a.source == "松江新聞網" and a.author == "林雨桐"
    assert a.date is None  # 「昨天下午」 is no publication date
    assert a.raw.startswith("松江新聞網(wǎng)訊")  # the original is kept
    assert a.id.startswith("h")


def test_headline_and_dateline_at_top(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("松江区召开人才大会\n2024年3月12日 来源：松江融媒\n会议决定设立人才基金。\n", encoding="utf-8")
    [a] = load(p)
    assert (a.title, a.date, a.source, a.text) == ("松江区召开人才大会", "2024-03-12", "松江融媒", "会议决定设立人才基金。")


@pytest.mark.parametrize("encoding, body", [
    ("gbk", "松江区垃圾分类试点扩大到二十个社区，居民知晓率达到九成。"),
    ("big5", "松江區垃圾分類試點擴大到二十個社區，居民知曉率達到九成。"),
    ("utf-8-sig", "松江区垃圾分类试点扩大到二十个社区，居民知晓率达到九成。"),
])
def test_encodings_are_detected(tmp_path, encoding, body):
    p = tmp_path / "a.txt"
    p.write_bytes(("垃圾分類新聞\n" + body + "\n").encode(encoding) if encoding == "big5"
                  else ("垃圾分类新闻\n" + body + "\n").encode(encoding))
    [a] = load(p)
    assert isinstance(a, Article), a
    assert a.text == body


def test_jsonl_csv_json_records(tmp_path, records_file):
    arts = load(records_file)
    assert [a.id for a in arts] == ["t-001", "t-002", "t-003", "t-004"]
    assert arts[1].date == "2024-03-15" and arts[1].source == "松江教育網"
    c = tmp_path / "x.csv"
    with open(c, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "date", "source", "text"])
        w.writerow(["c1", "標題", "2024/05/06", "松江日報", "第一段。\n第二段。"])
    [a] = load(c)
    assert (a.id, a.date, a.text) == ("c1", "2024-05-06", "第一段。\n第二段。")
    j = tmp_path / "x.json"
    j.write_text(json.dumps({"articles": [{"title": "甲", "content": "正文內容。"}]}, ensure_ascii=False))
    [a] = load(j)
    assert a.text == "正文內容。" and a.id.startswith("h")


def test_html_main_text_without_boilerplate(tmp_path):
    p = tmp_path / "page.html"
    p.write_text(
        '<html lang="zh"><head><title>松江区召开人才大会 - 松江融媒</title>'
        '<meta property="article:published_time" content="2024-03-12T08:00:00+08:00"></head><body>'
        '<nav><a href="/">首页</a><a href="/news">新闻中心</a></nav><article><h1>松江区召开人才大会</h1>'
        "<p>昨天下午，松江区召开人才工作大会，研究部署高层次人才引进工作，会议决定设立三亿元人才基金。</p>"
        "<p>会议要求各部门加强协作，确保政策落地见效，为人才提供一站式服务，解决子女入学等实际困难。</p>"
        "<p>据介绍，人才基金将重点支持集成电路、生物医药和新能源三大产业，首批项目预计在六月前完成评审。</p>"
        "</article><aside><h3>相关新闻</h3><ul><li><a href='/1'>松江区举行招聘会</a></li></ul></aside><footer>版权所有 © 2024 松江融媒 联系我们 网站地图</footer></body></html>",
        encoding="utf-8")
    [a] = load(p)
    assert a.title == "松江区召开人才大会" and a.date == "2024-03-12"
    assert "三亿元人才基金" in a.text and "版权所有" not in a.text and "新闻中心" not in a.text


def test_dates():
    assert parse_date("2024年3月5日") == "2024-03-05"
    assert parse_date("2024-03-05T10:00:00+08:00") == "2024-03-05"
    assert parse_date("") is None
    with pytest.raises(ValueError, match="invalid date"):
        parse_date("2024-13-45")
    with pytest.raises(ValueError, match="invalid date"):
        parse_date("yesterday")


# ---- bad inputs: each is one LoadError naming the file and the reason

def one_error(path):
    items = load(path)
    errors = [i for i in items if isinstance(i, LoadError)]
    assert len(errors) == 1, items
    msg = str(errors[0])
    assert "\n" not in msg and str(path) in msg
    return msg, items


def test_empty_file(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    assert "empty file" in one_error(p)[0]


def test_binary_file(tmp_path):
    p = tmp_path / "image.txt"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 10)
    assert "binary" in one_error(p)[0]


def test_wrong_encoding(tmp_path):
    import random

    rnd = random.Random(1)
    p = tmp_path / "garbled.txt"
    p.write_bytes(bytes(rnd.randrange(0x80, 0x100) for _ in range(4000)))
    assert "not UTF-8, GBK/GB18030 or Big5" in one_error(p)[0]


def test_truncated_jsonl_line_keeps_the_other_records(tmp_path, records_file):
    lines = records_file.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    records_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    msg, items = one_error(records_file)
    assert f"{records_file}:3: invalid JSON line" in msg
    assert [a.id for a in items if isinstance(a, Article)] == ["t-001", "t-002", "t-004"]


def test_invalid_date_in_a_record(tmp_path):
    p = tmp_path / "feed.jsonl"
    p.write_text(json.dumps({"id": "x", "date": "2024-02-30", "text": "正文。"}) + "\n")
    assert "invalid date '2024-02-30'" in one_error(p)[0]


def test_file_too_large(tmp_path):
    p = tmp_path / "huge.txt"
    with open(p, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: no time spent writing
    assert "too large (50.0 MB" in one_error(p)[0]


def test_unsupported_and_missing_paths(tmp_path):
    (tmp_path / "a.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    files, errors = list_files([tmp_path / "a.doc", tmp_path / "nope"])
    assert files == []
    assert [e.reason for e in errors] == ["unsupported file type '.doc' (save it as .docx)", "no such file or folder"]


def test_a_record_whose_title_is_its_whole_text_keeps_its_text(tmp_path):
    body = "松江區今天開通地鐵三號線，全長二十公里，設站十二座。"
    p = tmp_path / "feed.jsonl"
    p.write_text(json.dumps({"id": "x", "title": body, "text": body}, ensure_ascii=False) + "\n"
                 + json.dumps({"id": "y", "title": "原标题：松江区开通地铁", "text": "正文。"}, ensure_ascii=False) + "\n",
                 encoding="utf-8")
    a, b = load(p)
    assert a.text == body
    assert b.title == "松江区开通地铁"


def test_exports_stream_in_their_own_encoding(tmp_path):
    # a GBK JSONL whose text holds a U+2028 line separator (legal inside a JSON string)
    p = tmp_path / "gbk.jsonl"
    rec = {"id": "g1", "title": "松江区新闻", "text": "第一段\u2028第二段。"}
    p.write_bytes((json.dumps(rec, ensure_ascii=False) + "\r\n").encode("gb18030"))
    [a] = load(p)
    assert isinstance(a, Article), a
    assert a.id == "g1" and "第二段" in a.text
    c = tmp_path / "big5.csv"
    c.write_bytes("id,title,text\r\nb1,臺北新聞,\"臺北市今天開通新路線。\r\n第二段。\"\r\n".encode("big5"))
    [b] = load(c)
    assert b.title == "臺北新聞" and b.text == "臺北市今天開通新路線。\n第二段。"


# ---------------------------------------------------------------- bounds (issue #11)

GOOD = {"id": "ok-1", "title": "青溪夜市开业", "text": "青溪夜市今晚开业，设摊位一百二十个。"}


def outcome(items):
    """{origin or id: 'article' | the LoadError's reason}."""
    return {(x.id if isinstance(x, Article) else x.origin): ("article" if isinstance(x, Article) else x.reason)
            for x in items}


def test_an_over_long_record_is_one_failed_item_in_jsonl_json_and_csv(tmp_path, monkeypatch):
    import newsrag.articles as articles

    monkeypatch.setattr(articles, "MAX_ARTICLE_BYTES", 3000)
    long = {"id": "long-1", "text": "长" * 1001}  # 3003 bytes of UTF-8
    jsonl = tmp_path / "feed.jsonl"
    jsonl.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (long, GOOD)), encoding="utf-8")
    got = outcome(load(jsonl))
    assert got["ok-1"] == "article" and "text too long" in got[f"{jsonl}:1"], got
    js = tmp_path / "feed.json"
    js.write_text(json.dumps([long, GOOD], ensure_ascii=False), encoding="utf-8")
    got = outcome(load(js))
    assert got["ok-1"] == "article" and "text too long" in got[f"{js}[0]"], got


def test_a_csv_field_over_csvs_own_limit_is_one_failed_item_not_the_end_of_the_file(tmp_path):
    p = tmp_path / "feed.csv"
    with open(p, "w", encoding="utf-8", newline="") as f:  # 6 MB: over csv's 128 KB and the article bound
        w = csv.writer(f)
        w.writerow(["id", "title", "text"])
        w.writerow(["long-1", "太长", "长" * (2 * 1024 ** 2)])
        w.writerow([GOOD["id"], GOOD["title"], GOOD["text"]])
    got = outcome(load(p))
    assert got["ok-1"] == "article" and "text too long" in got[f"{p}:2"], got


def test_a_json_file_over_the_bound_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import newsrag.articles as articles

    monkeypatch.setattr(articles, "MAX_JSON_BYTES", 10_000)
    p = tmp_path / "big.json"
    p.write_text(json.dumps([GOOD] * 200, ensure_ascii=False), encoding="utf-8")
    [e] = load(p)
    assert isinstance(e, LoadError) and e.origin == str(p) and "too large" in e.reason and ".jsonl" in e.reason


def test_an_over_long_jsonl_line_is_skipped_and_the_next_lines_read(tmp_path, monkeypatch):
    import newsrag.articles as articles

    monkeypatch.setattr(articles, "MAX_JSON_BYTES", 1000)
    p = tmp_path / "feed.jsonl"
    p.write_text(json.dumps({"text": "x" * 5000}) + "\n" + json.dumps(GOOD, ensure_ascii=False) + "\n",
                 encoding="utf-8")
    got = outcome(load(p))
    assert "line too long" in got[f"{p}:1"] and got["ok-1"] == "article", got


@pytest.mark.parametrize("depth", [33, 10_000])
def test_deeply_nested_json_is_one_error_naming_the_file(tmp_path, depth):
    nested = "[" * depth + "]" * depth
    js = tmp_path / "deep.json"
    js.write_text('{"articles": [' + json.dumps(GOOD, ensure_ascii=False) + ", " + nested + "]}", encoding="utf-8")
    [e] = load(js)
    assert isinstance(e, LoadError) and e.origin == str(js) and "nested" in e.reason
    jsonl = tmp_path / "deep.jsonl"
    jsonl.write_text(nested + "\n" + json.dumps(GOOD, ensure_ascii=False) + "\n", encoding="utf-8")
    got = outcome(load(jsonl))
    assert "nested" in got[f"{jsonl}:1"] and got["ok-1"] == "article", got


def test_json_within_the_depth_bound_loads(tmp_path):
    record = dict(GOOD, extra=json.loads("[" * 30 + "]" * 30))  # 32 levels with the list around it
    p = tmp_path / "ok.json"
    p.write_text(json.dumps([record], ensure_ascii=False), encoding="utf-8")
    assert outcome(load(p)) == {"ok-1": "article"}

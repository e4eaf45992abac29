import json
from pathlib import Path

import pytest

from newsrag.cli import main

SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed" / "000_a62ff834cd6f190a.txt"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_search_stats_delete(tmp_path, capsys, crawled_file, records_file):
    idx = tmp_path / "idx"
    code, out, err = run(capsys, "ingest", crawled_file, records_file, "--index", idx, "-q")
    assert code == 0 and "5 added" in err and "0 failed" in err

    code, out, err = run(capsys, "search", "会议关于人才政策做了什么决定", "--index", idx, "-k", "3", "--json")
    hits = json.loads(out)
    assert hits[0]["title"] == "區委常委會會議召開"
    assert "人才引進辦法" in hits[0]["text"]
    assert set(hits[0]) >= {"article_id", "title", "date", "source", "text", "start", "end", "score", "retrievers"}

    code, out, err = run(capsys, "search", "地铁", "--index", idx, "--since", "2024-03-01", "--json")
    assert all(h["date"] >= "2024-03-01" for h in json.loads(out))

    code, out, err = run(capsys, "stats", "--index", idx, "--json")
    assert json.loads(out)["articles"] == 5

    code, out, err = run(capsys, "delete", "t-001", "nope", "--index", idx)
    assert code == 1 and "deleted t-001" in err and "no article with id 'nope'" in err
    code, out, err = run(capsys, "stats", "--index", idx, "--json")
    assert json.loads(out)["articles"] == 4


def test_bad_file_is_one_line_naming_it(tmp_path, capsys, records_file):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"")
    code, out, err = run(capsys, "ingest", bad, records_file, "--index", tmp_path / "idx", "-q")
    assert code == 0
    assert f"newsrag: error: {bad}: empty file\n" in err


def test_bad_setting_is_a_clear_error(tmp_path, capsys, records_file):
    run(capsys, "ingest", records_file, "--index", tmp_path / "idx", "-q")
    code, out, err = run(capsys, "search", "x", "--index", tmp_path / "idx", "--since", "2024-02-31")
    assert code == 2 and err.startswith("newsrag: error: invalid date '2024-02-31'")


def test_a_missing_index_is_an_error_not_a_new_empty_one(tmp_path, capsys):
    for command in (["search", "x"], ["ask", "x"], ["brief"], ["stats"], ["show", "a"], ["delete", "a"]):
        code, out, err = run(capsys, *command, "--index", tmp_path / "typo")
        assert code == 2 and err.startswith(f"newsrag: error: no index at {tmp_path / 'typo'}"), command
        assert not (tmp_path / "typo").exists()


@pytest.mark.skipif(not SEED.exists(), reason="the seed report lives in ../shared, outside the repo")
def test_seed_report(tmp_path, capsys):
    idx = tmp_path / "idx"
    run(capsys, "ingest", SEED, "--index", idx, "-q")
    code, out, err = run(capsys, "search", "会议关于人才政策做了什么决定", "--index", idx, "--per-article", "0",
                         "--json")
    top = json.loads(out)[0]
    assert "高層次人才引進政策" in top["text"] and "揭榜掛帥" in top["text"]
    code, out, err = run(capsys, "show", top["article_id"], "--index", idx)
    art = json.loads(out)
    assert art["meta"]["editor"] == "莊恩慧" and "責編" not in art["text"]
    assert "武進新聞網訊" in art["text"] and "(jìn)" not in art["text"]

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
    assert code == 1 and "4 added" in err  # the rest went in; the status says something failed
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


# ---------------------------------------------------------------- rough edges (issue #11)


def test_index_naming_a_plain_file_is_a_one_line_error(tmp_path, capsys, records_file):
    plain = tmp_path / "notes.txt"
    plain.write_text("not an index", encoding="utf-8")
    for command in (["ingest", records_file], ["search", "x"], ["stats"]):
        code, out, err = run(capsys, *command, "--index", plain, "-q" if command[0] == "ingest" else "--json")
        assert code == 2 and err == f"newsrag: error: --index {plain} is a file, not an index folder\n", command


def test_missing_input_paths_are_reported_and_fail_the_run(tmp_path, capsys, records_file):
    idx = tmp_path / "idx"
    code, out, err = run(capsys, "ingest", tmp_path / "missing.jsonl", "--index", idx, "-q")
    assert code == 1 and f"{tmp_path / 'missing.jsonl'}: no such file or folder" in err
    assert not idx.exists()  # nothing valid to ingest: no empty index left behind
    code, out, err = run(capsys, "ingest", records_file, tmp_path / "missing.jsonl", "--index", idx, "-q")
    assert code == 1 and "missing.jsonl: no such file or folder" in err and "4 added" in err


def test_one_bad_json_file_does_not_sink_the_batch(tmp_path, capsys, records_file):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 10_000 + "]" * 10_000, encoding="utf-8")
    code, out, err = run(capsys, "ingest", deep, records_file, "--index", tmp_path / "idx", "-q")
    assert code == 1 and "Traceback" not in err
    assert f"newsrag: error: {deep}: JSON nested more than 32 levels deep\n" in err and "4 added" in err


@pytest.mark.parametrize("command", ["ask", "search"])
def test_an_empty_question_is_refused(tmp_path, capsys, records_file, command):
    run(capsys, "ingest", records_file, "--index", tmp_path / "idx", "-q")
    for question in ("", "   "):
        code, out, err = run(capsys, command, question, "--index", tmp_path / "idx")
        assert (code, out, err) == (2, "", "newsrag: error: the question is empty\n")


def test_a_closed_pipe_ends_quietly(tmp_path, capsys, records_file):
    import subprocess
    import sys

    run(capsys, "ingest", records_file, "--index", tmp_path / "idx", "-q")
    # `newsrag stats | head -0`: the reader is gone before anything is written.
    proc = subprocess.Popen([sys.executable, "-m", "newsrag.cli", "stats", "--index", str(tmp_path / "idx")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err

import json
from pathlib import Path

import pytest

from newsrag.cli import build_parser, main

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


# ---------------------------------------------------------------- as a new user meets it (issue #12)


def help_of(capsys, *command):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_version(capsys):
    from newsrag import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"newsrag {__version__}\n"


BUILD_FLAGS = ("--chunk-tokens", "--chunk-overlap", "--batch-size", "--embedder", "--backend", "--ann")


@pytest.mark.parametrize("command, builds", [
    ("ingest", True), ("demo", True), ("serve", True), ("search", False), ("ask", False), ("brief", False),
    ("summarize", False), ("delete", False), ("stats", False), ("check", False), ("show", False)])
def test_index_building_flags_only_where_an_index_is_built(capsys, command, builds):
    text = help_of(capsys, command)
    assert all((flag in text) == builds for flag in BUILD_FLAGS), text
    assert ("--read-only" in text) == (command not in ("ingest", "demo", "delete"))


def test_every_option_says_what_it_is_for():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in [("newsrag", parser), *commands.items()]:
        silent = [a.option_strings or a.dest for a in sub._actions if not a.help]
        assert not silent, (name, silent)


def test_help_names_defaults(capsys):
    assert "(default indexes/sample)" in help_of(capsys, "demo")
    assert "(default indexes/news)" in help_of(capsys, "stats")
    assert "port to listen on (default 7860)" in help_of(capsys, "serve")
    assert "one JSON object" in help_of(capsys, "stats")
    assert "summarize" in help_of(capsys)


def test_one_label_for_an_undated_article(tmp_path, capsys, crawled_file):
    from newsrag.dates import UNDATED

    idx = tmp_path / "idx"
    run(capsys, "ingest", crawled_file, "--index", idx, "-q")  # a crawled page without a date
    code, search_out, _ = run(capsys, "search", "区委常委会会议", "--index", idx)
    code, ask_out, _ = run(capsys, "ask", "区委常委会会议讨论了什么", "--index", idx)
    code, stats_out, _ = run(capsys, "stats", "--index", idx)
    code, brief_out, _ = run(capsys, "brief", "--index", idx)
    for out in (search_out, ask_out, brief_out):
        assert UNDATED in out and "undated" not in out and "None" not in out
    assert f"first_date: {UNDATED}" in stats_out and "None" not in stats_out
    assert json.loads(run(capsys, "stats", "--index", idx, "--json")[1])["first_date"] is None


def test_counts_read_as_words(tmp_path, capsys):
    feed = tmp_path / "one.jsonl"
    feed.write_text(json.dumps({"id": "x1", "title": "青溪灯会开幕", "date": "2024-02-10",
                                "text": "青溪灯会今晚开幕，展期十天。"}, ensure_ascii=False) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "ingest", feed, "--index", tmp_path / "idx", "-q")
    assert "1 added (0 near-duplicates)" in err and "; 1 chunk (1 embedded)" in err
    code, _, err = run(capsys, "brief", "--index", tmp_path / "idx")
    assert "newsrag: 1 article, 1 theme in" in err
    code, out, _ = run(capsys, "check", "--index", tmp_path / "idx")
    assert "1 article, 1 chunk," in out


def test_summarize_a_file_needs_no_index(tmp_path, capsys, crawled_file):
    code, out, err = run(capsys, "summarize", crawled_file, "--max-chars", "40", "--index", tmp_path / "none")
    assert code == 0 and 0 < len(out.strip()) <= 40 and "區委召開常委會會議" in out
    assert "記者" not in out and "新聞網訊" not in out and not (tmp_path / "none").exists()
    assert err.startswith("newsrag: 「區委常委會會議召開」: ")  # named by its title: an unstored id says nothing
    code, out, err = run(capsys, "summarize", crawled_file, "--json")
    [s] = json.loads(out)
    assert s["title"] == "區委常委會會議召開" and s["max_chars"] == 30
    assert s["sentences"] and all(x["start"] < x["end"] for x in s["sentences"])


def test_summarize_a_stored_article_and_every_record_of_an_export(tmp_path, capsys, records_file):
    idx = tmp_path / "idx"
    run(capsys, "ingest", records_file, "--index", idx, "-q")
    code, out, err = run(capsys, "summarize", "t-003", "--index", idx, "--json")
    [s] = json.loads(out)
    assert code == 0 and s["article_id"] == "t-003" and "罚款" in s["text"] and len(s["text"]) <= s["max_chars"]
    code, out, err = run(capsys, "summarize", records_file, "--json")
    assert code == 0 and [s["article_id"] for s in json.loads(out)] == ["t-001", "t-002", "t-003", "t-004"]


def test_summarize_errors_are_one_line(tmp_path, capsys, records_file):
    idx = tmp_path / "idx"
    code, out, err = run(capsys, "summarize", tmp_path / "missing.txt")
    assert (code, out, err) == (2, "", f"newsrag: error: {tmp_path / 'missing.txt'}: no such file\n")
    code, out, err = run(capsys, "summarize", "t-001", "--index", idx)
    assert code == 2 and err.startswith(f"newsrag: error: t-001: no such file, and no index at {idx}")
    run(capsys, "ingest", records_file, "--index", idx, "-q")
    code, out, err = run(capsys, "summarize", "nope", "--index", idx)
    assert (code, out) == (2, "") and err == f"newsrag: error: nope: no such file, and no article with this id in {idx}\n"
    code, out, err = run(capsys, "summarize", "t-001", "--index", idx, "--max-chars", "3")
    assert code == 2 and err.startswith("newsrag: error: max_chars must be between 10 and 2000") and "\n" == err[-1]
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    code, out, err = run(capsys, "summarize", empty)
    assert (code, err) == (2, f"newsrag: error: {empty}: empty file\n")

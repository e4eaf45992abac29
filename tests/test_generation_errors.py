"""A generator backend that fails is an error everywhere (library, CLI, API, UI), never an answer and
never "no evidence"; the window comes from the server where it says; truncation is shown."""
import contextlib
import json
import sys

import pytest
import requests

from newsrag import Archive
from newsrag.answering import NO_EVIDENCE, TRUNCATED_MARK
from newsrag.api import create_app
from newsrag.cli import main
from newsrag.generators import (FALLBACK_WINDOW, TEMPLATE_SLACK, GenerationError, GeneratorError, OpenAIGenerator,
                                collect, make_generator)
from newsrag.prompts import Passage
from newsrag.ui import error_box

from conftest import RECORDS
from fakellm import FakeChatServer, closed_port_url
from test_api import running

QUESTION = "松江区地铁三号线什么时候通车？"
ANSWER = "松江区地铁三号线预计2027年通车。"
PASSAGES = [Passage(i, f"a{i}", r["title"], r["date"], r["source"], r["text"]) for i, r in enumerate(RECORDS, 1)]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen-errors") / "idx"
    with Archive.open(path) as a:
        a.ingest(RECORDS)
    return path


CUT = "松江区地铁三号线预计2027年通车。线路全长二十公里"  # 26 characters, then the connection closes
FAILURES = {  # name: (how the server fails, what the error says, its flags)
    # llama-cpp-python on a prompt over its window: HTTP 200, then nothing at all
    "empty 200": (dict(finish=None, done=False), "HTTP 200 with no events and no [DONE]", {"overflow": True}),
    "no [DONE]": (dict(reply=CUT, finish=None, done=False), "cut off after 26 characters", {}),
    "nothing written": (dict(finish="stop"), "returned no text", {}),
    "overflow message": (dict(status=400, error="Requested tokens (5870) exceed context window of 4096"),
                         "does not fit the model's context window", {"overflow": True}),
    "server error": (dict(status=500, error="CUDA out of memory"), "HTTP 500: CUDA out of memory", {}),
    "timeout": (dict(reply=ANSWER, stall=3), "no answer within 1 s", {"timeout": True}),
    "stalled stream": (dict(reply=CUT, stall_after=10), "no data for 1 s after 10 characters", {"timeout": True}),
    "connection refused": (None, "connection refused", {}),
}


@contextlib.contextmanager
def failing(name: str):
    """The URL of a server failing in the named way."""
    how = FAILURES[name][0]
    if how is None:
        yield closed_port_url()
        return
    with FakeChatServer(**how) as server:
        yield server.url


@pytest.mark.parametrize("name", list(FAILURES))
def test_each_backend_failure_is_one_line_naming_backend_and_cause(name):
    _, cause, flags = FAILURES[name]
    with failing(name) as url:
        gen = OpenAIGenerator("m", url, timeout=1, context_tokens=4096)
        with pytest.raises(GenerationError) as err:
            collect(gen.answer(QUESTION, PASSAGES[:1], today="2024-06-01"))
    message = str(err.value)
    assert message.startswith(f"generation failed (openai:m at {url}): ") and "\n" not in message
    assert cause in message
    assert err.value.timeout == flags.get("timeout", False)
    assert err.value.overflow == flags.get("overflow", False)


def test_a_failed_generation_is_never_no_evidence(index):
    with FakeChatServer("", finish=None, done=False) as server, \
            Archive.open(index, generator="openai", base_url=server.url) as a:
        with pytest.raises(GenerationError, match="no events"):
            a.ask(QUESTION)
        assert server.requests  # the model was called: retrieval found evidence


def test_no_evidence_is_decided_before_any_model_is_called(index):
    with FakeChatServer(ANSWER) as server, Archive.open(index, generator="openai", base_url=server.url) as a:
        answer = a.ask("火星基地什么时候建成？")
        assert answer.no_evidence and answer.text == NO_EVIDENCE
        assert server.requests == []
    # and a model that reads the passages and finds nothing says so in its own words: not "no evidence"
    with FakeChatServer(NO_EVIDENCE) as server, Archive.open(index, generator="openai", base_url=server.url) as a:
        answer = a.ask(QUESTION)
        assert not answer.no_evidence and answer.text == NO_EVIDENCE and not answer.citations


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["empty 200", "connection refused", "overflow message"])
def test_cli_failure_is_one_line_and_a_nonzero_exit(index, capsys, name):
    with failing(name) as url:
        code, out, err = run_cli(capsys, "ask", QUESTION, "--index", index, "-k", "30", "--generator", "openai",
                                 "--base-url", url, "--json")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"newsrag: error: generation failed (openai:default at {url}): ")
    assert "Traceback" not in err and NO_EVIDENCE not in err


def test_truncation_is_shown_with_the_answer(index, capsys):
    with FakeChatServer(ANSWER + "线路全长", finish="length") as server:
        argv = ["ask", QUESTION, "--index", index, "--generator", "openai", "--base-url", server.url]
        code, out, _ = run_cli(capsys, *argv, "--json")
        data = json.loads(out)
        assert code == 0 and data["truncated"] is True and data["text"].endswith(TRUNCATED_MARK)
        assert data["citations"]  # what was written is still traced
        code, out, _ = run_cli(capsys, *argv)
        assert TRUNCATED_MARK in out
    with FakeChatServer(ANSWER, finish="stop") as server:
        code, out, _ = run_cli(capsys, "ask", QUESTION, "--index", index, "--generator", "openai",
                               "--base-url", server.url, "--json")
        assert json.loads(out)["truncated"] is False


def test_api_failures_are_502_and_504_and_an_error_event_once_streaming(index):
    with Archive.open(index, generator="openai") as a, running(create_app(a, ui=False)) as api:
        for name, status in (("empty 200", 502), ("connection refused", 502), ("timeout", 504)):
            with failing(name) as url:
                a._generator = OpenAIGenerator("m", url, timeout=1)
                r = requests.post(f"{api}/api/ask", json={"question": QUESTION}, timeout=30)
                assert r.status_code == status, name
                assert r.json()["detail"].startswith(f"generation failed (openai:m at {url}): "), name
                r = requests.post(f"{api}/api/brief", json={"topic": "地铁"}, timeout=30)
                assert r.status_code == status, name
        # a stream that breaks after it began: the 200 is sent, so the failure is an event
        with FakeChatServer(ANSWER * 3, finish=None, done=False) as server:
            a._generator = OpenAIGenerator("m", server.url)
            r = requests.post(f"{api}/api/ask?stream=true", json={"question": QUESTION}, timeout=30)
        events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
        assert r.status_code == 200 and events[0] == "delta" and events[-2:] == ["error", "done"]
        assert "answer" not in events
        error = json.loads(r.text.split("event: error\ndata: ")[1].split("\n")[0])
        assert error["status"] == 502 and "cut off after" in error["detail"]
        with FakeChatServer(ANSWER, finish="length") as server:
            a._generator = OpenAIGenerator("m", server.url)
            assert requests.post(f"{api}/api/ask", json={"question": QUESTION}, timeout=30).json()["truncated"]


def test_ui_names_a_failed_generation_in_plain_language():
    box = error_box(GenerationError("openai:m at http://127.0.0.1:8080/v1", "the stream was cut off"))
    assert "生成模型出错" in box and "The generation backend failed" in box and "cut off" in box


def test_the_window_comes_from_the_server():
    llamacpp = {"/props": {"default_generation_settings": {"n_ctx": 2048}}}
    vllm = {"/v1/models": {"object": "list", "data": [{"id": "other", "max_model_len": 999},
                                                      {"id": "m", "max_model_len": 3072}]}}
    for get, setting, window in ((llamacpp, None, 2048), (vllm, None, 3072), (llamacpp, 1024, 1024),
                                 ({}, None, FALLBACK_WINDOW), ({}, 6000, 6000)):
        with FakeChatServer(ANSWER, get=get) as server:
            assert OpenAIGenerator("m", server.url, context_tokens=setting).context_tokens == window, (get, setting)


def test_the_prompt_is_packed_to_the_servers_window_with_room_for_the_answer():
    many = [Passage(i, f"a{i}", "標題", "2024-01-01", "甲報", RECORDS[i % 4]["text"] * 2) for i in range(1, 31)]
    with FakeChatServer(ANSWER, get={"/props": {"default_generation_settings": {"n_ctx": 1024}}},
                        tokens_per_char=2) as server:
        gen = OpenAIGenerator("m", server.url, max_new_tokens=128)
        collect(gen.answer("问题", many, today="2024-01-01"))
        prompt = server.prompt()
        assert 0 < prompt.count("<资料 编号=") < len(many)
        # counted by the server's tokenizer (2 a character here), not guessed
        assert 2 * len(prompt) + 128 + TEMPLATE_SLACK <= 1024
        assert "/extras/tokenize/count" in server.paths
        assert server.requests[-1]["max_tokens"] == 128


def test_context_tokens_is_a_setting_like_the_others(index, monkeypatch):
    with FakeChatServer(ANSWER) as server:
        with Archive.open(index, generator="openai", base_url=server.url, context_tokens=1500) as a:
            assert a.generator.context_tokens == 1500
        monkeypatch.setenv("NEWSRAG_CONTEXT_TOKENS", "2500")
        with Archive.open(index, generator="openai", base_url=server.url) as a:
            assert a.generator.context_tokens == 2500


def test_setting_up_a_local_gguf_says_what_is_missing(tmp_path, monkeypatch, index, capsys):
    with pytest.raises(GeneratorError, match="llamacpp generator needs a model file"):
        make_generator("llamacpp")
    with pytest.raises(GeneratorError, match="is a GGUF file: run it with --generator llamacpp"):
        make_generator("transformers", model="models/gemma-3-270m-q4_k_m.gguf")
    code, out, err = run_cli(capsys, "ask", QUESTION, "--index", index, "--generator", "llamacpp",
                             "--model", tmp_path / "missing.gguf")
    assert code == 3 and err.count("\n") == 1 and "missing.gguf': no such file" in err
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    with pytest.raises(GeneratorError, match=r"needs llama-cpp-python: pip install 'newsrag\[llamacpp\]'"):
        make_generator("llamacpp", model=str(gguf)).count_tokens("你好")


def test_a_hung_server_costs_one_probe_timeout_not_one_per_passage():
    import socket
    import time

    with socket.socket() as hung:  # accepts connections (the backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/v1"
        gen = OpenAIGenerator("m", url, timeout=1)
        gen.PROBE_TIMEOUT = 0.5
        t0 = time.monotonic()
        with pytest.raises(GenerationError, match="no answer within 1 s") as err:
            collect(gen.answer(QUESTION, PASSAGES * 5, today="2024-06-01"))
        assert err.value.timeout and time.monotonic() - t0 < 5

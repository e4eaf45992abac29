"""The sentence-transformers backend, with a tiny random model built here (no download)."""
import numpy as np
import pytest

from newsrag import Archive
from newsrag.embedders import SentenceTransformerEmbedder
from newsrag.text import normalize

from conftest import RECORDS
from tiny_models import char_tokenizer

QUERY_PROMPT = "查询："


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models
    from transformers import BertConfig, BertModel

    root = tmp_path_factory.mktemp("tiny")
    corpus = "".join(normalize(r["title"] + r["text"]) for r in RECORDS) + QUERY_PROMPT + "哪几点什么多少"
    tok = char_tokenizer([corpus], max_length=128)
    hf = root / "hf"
    BertModel(BertConfig(vocab_size=len(tok.get_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(hf)
    tok.save_pretrained(hf)
    word = models.Transformer(str(hf), max_seq_length=48)
    pool = models.Pooling(32, pooling_mode="mean")
    st = SentenceTransformer(modules=[word, pool], prompts={"query": QUERY_PROMPT})
    out = root / "st"
    st.save(str(out))
    return out


def test_tiny_model_through_the_real_loading_code(tmp_path, tiny_model, records_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with Archive.open(tmp_path / "idx", embedder=str(tiny_model), chunk_tokens=40, chunk_overlap=4) as a:
        embedded = []
        real = a.embedder.embed_passages
        monkeypatch.setattr(a.embedder, "embed_passages", lambda texts: embedded.extend(texts) or real(texts))
        report = a.ingest([records_file])
        assert report.added == 4 and report.failed == 0
        assert a.stats()["embedder"] == str(tiny_model.resolve()) and a.stats()["dim"] == 32
        emb = a.embedder
        assert isinstance(emb, SentenceTransformerEmbedder)
        assert emb.max_tokens == 48
        # every text the model saw, title included, fits the chunk size: no silent truncation
        lengths = [emb.count_tokens(t) for t in embedded]
        assert len(lengths) == report.chunks > 4 and max(lengths) <= 40
        # the model's own query prompt is applied by the embedder, not by the caller
        q = emb.embed_query("课后服务几点结束")
        direct = emb.model.encode([QUERY_PROMPT + "课后服务几点结束"], normalize_embeddings=True)[0]
        assert np.allclose(q, direct, atol=1e-5)
        hits = a.search("课后服务几点结束", k=4)
        assert {h.article_id for h in hits} <= {"t-001", "t-002", "t-003", "t-004"} and hits
    # reopening without naming the embedder uses the index's own
    with Archive.open(tmp_path / "idx") as a:
        assert isinstance(a.embedder, SentenceTransformerEmbedder)
        assert a.search("博物館夜場", k=1, mode="dense")


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    from newsrag.embedders import EmbedderError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedderError, match="cannot load embedding model 'no-such-org/no-such-model'"):
        Archive.open(tmp_path / "idx", embedder="no-such-org/no-such-model")

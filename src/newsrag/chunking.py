"""Chunk, and the sentence-aware chunker.

Chunks are measured in the embedder's own tokens, title included, so no chunk
is ever truncated by the model; sentences are kept whole unless a single one is
longer than the budget, in which case it is cut at clause marks, then by length.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .text import normalize, sentence_spans


@dataclass
class Chunk:
    seq: int
    start: int  # character span in the article's clean text
    end: int
    text: str  # the span, in the article's own script
    norm: str  # title + span, normalized: what is embedded and BM25-indexed


def indexed_text(title: str, text: str) -> str:
    """The string that stands for a chunk in both indexes: its title travels with it."""
    return normalize(title) + "\n" + normalize(text) if title else normalize(text)


PARAGRAPH_FILL = 0.6
_CLAUSE = re.compile(r".*?(?:[，、：,:]|$)", re.S)


def _pieces(text: str, start: int, end: int, cost: Callable[[str], int], budget: int):
    """Split one over-long sentence into spans that fit ``budget`` tokens."""
    spans = [(start + m.start(), start + m.end()) for m in _CLAUSE.finditer(text[start:end]) if m.end() > m.start()]
    for s, e in spans:
        if cost(text[s:e]) <= budget:
            yield s, e
            continue
        # No clause mark helps: cut by characters, sized from the measured density.
        while s < e:
            step = max(1, int((e - s) * budget / max(cost(text[s:e]), 1) * 0.9))
            while step > 1 and cost(text[s:s + step]) > budget:
                step = int(step * 0.8)
            yield s, s + step
            s += step


def chunk_article(title: str, text: str, count_tokens: Callable[[str], int],
                  max_tokens: int, overlap: int = 0) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``max_tokens`` tokens (title included)."""
    base = count_tokens("")
    norm_title = normalize(title)
    # A very long headline may take at most a quarter of the budget.
    while norm_title and count_tokens(norm_title + "\n") - base > max_tokens // 4:
        norm_title = norm_title[: int(len(norm_title) * 0.8)]
        title = title[: len(norm_title)]
    budget = max_tokens - (count_tokens(norm_title + "\n") if norm_title else base)
    if budget < 8:
        raise ValueError(f"chunk size {max_tokens} tokens is too small")

    def cost(s: str) -> int:
        return max(count_tokens(normalize(s)) - base, 0)

    units: list[tuple[int, int, int]] = []  # (start, end, tokens)
    for s, e in sentence_spans(text):
        c = cost(text[s:e])
        if c <= budget:
            units.append((s, e, c))
        else:
            units.extend((ps, pe, cost(text[ps:pe])) for ps, pe in _pieces(text, s, e, cost, budget))
    # News paragraphs are topical: a chunk that is already well filled ends at a paragraph end.
    para_end = [e >= len(text) or text[e] == "\n" for _, e, _ in units]

    def make(seq: int, s: int, e: int) -> Chunk:
        return Chunk(seq, s, e, text[s:e], indexed_text(title, text[s:e]))

    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, used = i, 0
        while j < len(units) and used + units[j][2] <= budget:
            used += units[j][2]
            j += 1
            if para_end[j - 1] and used >= budget * PARAGRAPH_FILL:
                break
        j = max(j, i + 1)
        # Sub-word merges across sentence ends can add a token or two: check the real count.
        while j > i + 1 and count_tokens(make(0, units[i][0], units[j - 1][1]).norm) > max_tokens:
            j -= 1
        chunks.append(make(len(chunks), units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        # Start the next chunk with as many trailing sentences as fit in ``overlap``.
        back, k = 0, j
        while overlap and k - 1 > i and back + units[k - 1][2] <= overlap:
            k -= 1
            back += units[k][2]
        i = k
    return chunks

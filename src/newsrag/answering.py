"""Question -> Answer: the generator writes, then every sentence is traced to a passage.

Citations never come from the model's own markers: each answer sentence is
matched back to the passage sentence it rests on (verbatim for the extractive
generator, by character-bigram overlap for a model), and a sentence that
matches nothing is flagged as unsupported instead of being given a source.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Iterator

from .dates import event_date
from .extractive import Sentence, bigrams, split_passages
from .generators import Generator
from .prompts import Passage
from .text import coverage, normalize, sentence_spans, to_simplified, tokens

NO_EVIDENCE = "资料库中没有找到相关信息。"
NO_EVIDENCE_TRAD = "資料庫中沒有找到相關資訊。"
SUPPORT_MIN = 0.5  # share of an answer sentence's bigrams that must stand in its source sentence
EVIDENCE_MIN = 0.5  # share of the question's words that must appear in one passage
_MODEL_MARKERS = re.compile(r"\s*[\[［【]\s*(?:\d+\s*[,，、]?\s*)+[\]］】]")


@dataclass
class Citation:
    n: int
    article_id: str
    title: str
    date: str | None
    source: str
    quote: str  # the sentence of the article the answer rests on
    start: int  # span of the quote in the article's clean text
    end: int
    event_date: str | None = None  # what a relative word in the quote (「昨天」) points to

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AnswerSentence:
    text: str
    citations: list[int]
    supported: bool


@dataclass
class Answer:
    question: str
    text: str  # sentences with inline markers [1][2]
    sentences: list[AnswerSentence] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    no_evidence: bool = False
    period: dict | None = None  # the date range the question named, if any
    generator: str = ""

    @property
    def unsupported(self) -> list[str]:
        return [s.text for s in self.sentences if not s.supported]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unsupported"] = self.unsupported
        return d


def is_traditional(text: str) -> bool:
    return to_simplified(text) != text


def has_evidence(question: str, passages: list[Passage]) -> bool:
    """Does some passage contain most of what the question is about?

    Retrieval always returns something; an archive that never mentions the
    question's words has nothing to say about it, however close the vectors.
    """
    if not tokens(normalize(question)):
        return bool(passages)
    return any(coverage(question, p.title + "\n" + p.text) >= EVIDENCE_MIN for p in passages)


def _best_source(sentence_norm: str, candidates: list[Sentence]) -> tuple[Sentence | None, float]:
    grams = bigrams(sentence_norm)
    if not grams:
        return None, 0.0
    best, best_share = None, 0.0
    for c in candidates:
        if sentence_norm and sentence_norm in c.norm:
            return c, 1.0
        share = len(grams & bigrams(c.norm)) / len(grams)
        if share > best_share:
            best, best_share = c, share
    return best, best_share


def marked_text(sentences: list[AnswerSentence], number=lambda n: n) -> str:
    """Sentences with their inline markers: [n] for each source, [?] when there is none."""
    return "".join(s.text + ("".join(f"[{number(n)}]" for n in s.citations) if s.supported else "[?]")
                   for s in sentences)


def cite(question: str, text: str, passages: list[Passage], generator: str = "", period: dict | None = None) -> Answer:
    """Split generated text into sentences and trace each one to a passage sentence."""
    candidates = split_passages(passages, min_chars=2)
    answer = Answer(question, "", period=period, generator=generator)
    numbers: dict[tuple[str, int], int] = {}
    clean = _MODEL_MARKERS.sub("", text).strip()
    for a, b in sentence_spans(clean):
        sent = clean[a:b]
        src, share = _best_source(normalize(sent), candidates)
        if src is None or share < SUPPORT_MIN:
            answer.sentences.append(AnswerSentence(sent, [], False))
            continue
        p = passages[src.passage]
        key = (p.article_id, p.start + src.start)
        if key not in numbers:
            numbers[key] = len(answer.citations) + 1
            answer.citations.append(Citation(
                numbers[key], p.article_id, p.title, p.date, p.source, src.text, p.start + src.start,
                p.start + src.end, event_date(src.norm, p.date)))
        answer.sentences.append(AnswerSentence(sent, [numbers[key]], True))
    answer.text = marked_text(answer.sentences)
    return answer


def stream_answer(question: str, passages: list[Passage], generator: Generator, *, today: str,
                  period: dict | None = None) -> Iterator[str | Answer]:
    """Text pieces as the generator writes them, then the cited Answer."""
    if not passages or not has_evidence(question, passages):
        text = NO_EVIDENCE_TRAD if is_traditional(question) else NO_EVIDENCE
        yield text
        yield Answer(question, text, no_evidence=True, period=period, generator=generator.name)
        return
    pieces = []
    for piece in generator.answer(question, passages, today=today):
        pieces.append(piece)
        yield piece
    raw = "".join(pieces).strip()
    if not raw or NO_EVIDENCE[:8] in normalize(raw):
        yield Answer(question, raw or NO_EVIDENCE, no_evidence=True, period=period, generator=generator.name)
        return
    yield cite(question, raw, passages, generator.name, period)

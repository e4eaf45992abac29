"""Question -> Answer: the generator writes, then every sentence is traced to a passage.

Citations never come from the model's own markers: each answer sentence is
matched back to the passage sentence it rests on (verbatim for the extractive
generator, by character-bigram overlap for a model), and a sentence that
matches nothing is flagged as unsupported instead of being given a source. So
is a sentence that only repeats the prompt (its instructions, the question, a
block header or 「标题：」 line) or an article's byline or dateline: copying
those is not evidence of anything.

"No evidence" is decided from retrieval alone, before any model is called; a
model that fails is an error (GenerationError), never an empty or "not found" answer.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Iterator

from .dates import event_date
from .extractive import Sentence, bigrams, is_furniture, split_passages
from .generators import Finish, GenerationError, Generator
from .prompts import Passage
from .text import coverage, normalize, sentence_spans, to_simplified, tokens

NO_EVIDENCE = "资料库中没有找到相关信息。"
NO_EVIDENCE_TRAD = "資料庫中沒有找到相關資訊。"
SUPPORT_MIN = 0.5  # share of an answer sentence's bigrams that must stand in its source sentence
EVIDENCE_MIN = 0.5  # share of the question's words that must appear in one passage
_MODEL_MARKERS = re.compile(r"\s*[\[［【]\s*(?:\d+\s*[,，、]?\s*)+[\]］】]")
# The prompt's block markup, copied by a model (whole, or unclosed to the line's end, as small
# models write it and as max_new_tokens cuts it): dropped, it is no part of any sentence.
_FENCE_TAG = re.compile(r"[<＜]\s*/?\s*[资資]料[^>＞\n]*(?:[>＞]|$)", re.M)
# Labels only the prompt writes (「标题：」, 「编号=1」).
_PROMPT_LABEL = re.compile(r"^\W*(?:标题|標題|问题|問題|主题|主題|时间范围|時間範圍)\s*[:：]|(?:编号|編號|日期)\s*=")
SCAFFOLD_MIN = 0.8  # share of a sentence's bigrams found in the prompt's scaffolding that marks it a copy
TRUNCATED_MARK = "……〔回答达到长度上限，已截断 · cut off at max_new_tokens〕"
# Two quoted spans of one article this close are one passage to a reader (a source card
# shows this much around its quote): they share one citation, its span covering both.
MERGE_GAP = 90
MERGE_MAX = 400  # ... unless the joined quote would be longer than this
NEAR_SAME = 0.8  # bigram overlap at which two quotes of one article say the same thing


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
    flag: str = ""  # why an unsupported sentence has no source: no match, prompt copy, byline/dateline


class Traced:
    """Text whose sentences were each traced to a source (an Answer, a Summary): the ones with
    none, and the whole as a dict that lists them."""

    @property
    def unsupported(self) -> list[str]:
        return [s.text for s in self.sentences if not s.supported]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unsupported"] = self.unsupported
        return d


@dataclass
class Answer(Traced):
    question: str
    text: str  # sentences with inline markers [1][2]
    sentences: list[AnswerSentence] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    no_evidence: bool = False
    period: dict | None = None  # the date range the question named, if any
    generator: str = ""
    truncated: bool = False  # the model stopped at max_new_tokens: the text ends with TRUNCATED_MARK


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


def _copy_of_prompt(sentence: str, norm: str, share: float, verbatim: bool, scaffold_grams: set[str]) -> str:
    """Why a sentence is only a copy of the prompt or of page furniture ("" when it is not)."""
    if is_furniture(sentence):
        return "byline or dateline"
    if _PROMPT_LABEL.search(sentence):
        return "copies the prompt"
    grams = bigrams(norm)
    # A sentence that stands verbatim in an article is the article's word, even when the
    # question says the same (a yes/no question restated as its answer). Short copies such as
    # 「（今天是 2024-03-20。）」 match some article's bigrams too, so only verbatim counts here.
    inside = len(grams & scaffold_grams) / len(grams) if grams else 0.0
    if not verbatim and inside >= SCAFFOLD_MIN and inside >= share:
        return "copies the prompt"
    return ""


def _article_span(passages: list[Passage], article_id: str, start: int, end: int) -> str | None:
    """The article's clean text from ``start`` to ``end``, when the passages at hand hold all of it."""
    out, at = [], start
    for p in sorted((p for p in passages if p.article_id == article_id), key=lambda p: p.start):
        if p.start <= at < p.start + len(p.text):
            piece = p.text[at - p.start:end - p.start]
            out.append(piece)
            at += len(piece)
            if at >= end:
                return "".join(out)
    return None


def _same_passage(c: Citation, start: int, end: int, quote_norm: str) -> bool:
    """Whether a new quote of c's article belongs on c's card: next to it, or saying the same."""
    if max(c.end, end) - min(c.start, start) <= MERGE_MAX and \
            max(c.start, start) - min(c.end, end) <= MERGE_GAP:
        return True
    a, b = bigrams(normalize(c.quote)), bigrams(quote_norm)
    return bool(a and b) and len(a & b) / len(a | b) >= NEAR_SAME


def _add_citation(citations: list[Citation], passages: list[Passage], src: Sentence) -> int:
    """The number of the citation that quotes ``src``: one already made for that passage of
    its article (widened to cover it), or a new one."""
    p = passages[src.passage]
    start, end = p.start + src.start, p.start + src.end
    for c in citations:
        if c.article_id != p.article_id or not _same_passage(c, start, end, src.norm):
            continue
        if c.start <= start and end <= c.end:
            return c.n
        a, b = min(c.start, start), max(c.end, end)
        joined = _article_span(passages, c.article_id, a, b) if b - a <= MERGE_MAX else None
        if joined is not None:
            c.start, c.end, c.quote = a, b, joined
            c.event_date = c.event_date or event_date(src.norm, p.date)
        return c.n  # a near-repeat far away keeps the card it has
    citations.append(Citation(len(citations) + 1, p.article_id, p.title, p.date, p.source, src.text, start, end,
                              event_date(src.norm, p.date)))
    return len(citations)


def cite(question: str, text: str, passages: list[Passage], generator: str = "", period: dict | None = None,
         scaffold: str = "") -> Answer:
    """Split generated text into sentences and trace each one to a passage sentence.

    Sentences resting on one passage of an article (the same sentence, its neighbours)
    share one citation, so a reader sees each passage once.
    ``scaffold``: the prompt without the articles' text (prompts.scaffold); the question by default.
    """
    candidates = split_passages(passages, min_chars=2)  # bylines and datelines are left out there
    scaffold_grams = bigrams(normalize(scaffold or question))
    answer = Answer(question, "", period=period, generator=generator)
    clean = _FENCE_TAG.sub("", _MODEL_MARKERS.sub("", text)).strip()
    for a, b in sentence_spans(clean):
        sent = clean[a:b]
        norm = normalize(sent)
        if not bigrams(norm):
            continue  # punctuation left over from dropped markup
        src, share = _best_source(norm, candidates)
        flag = _copy_of_prompt(sent, norm, share, src is not None and norm in src.norm, scaffold_grams)
        if flag or src is None or share < SUPPORT_MIN:
            answer.sentences.append(AnswerSentence(sent, [], False, flag or "no source"))
            continue
        n = _add_citation(answer.citations, passages, src)
        answer.sentences.append(AnswerSentence(sent, [n], True))
    answer.text = marked_text(answer.sentences)
    return answer


def scaffold_of(generator: Generator, kind: str, passages: list[Passage], **values: str) -> str:
    """What ``generator`` wraps around the passages (nothing for the extractive one)."""
    scaffold = getattr(generator, "scaffold", None)
    return scaffold(kind, passages, **values) if scaffold else ""


def _declines(raw: str) -> bool:
    """The model's whole reply is the prompt's "not in the material" sentence."""
    return NO_EVIDENCE[:8] in normalize(raw) and len(raw) <= len(NO_EVIDENCE) + 6


def stream_answer(question: str, passages: list[Passage], generator: Generator, *, today: str,
                  period: dict | None = None) -> Iterator[str | Answer]:
    """Text pieces as the generator writes them, then the cited Answer."""
    if not passages or not has_evidence(question, passages):
        text = NO_EVIDENCE_TRAD if is_traditional(question) else NO_EVIDENCE
        yield text
        yield Answer(question, text, no_evidence=True, period=period, generator=generator.name)
        return
    pieces, finish = [], Finish("stop")
    for piece in generator.answer(question, passages, today=today):
        if isinstance(piece, Finish):
            finish = piece
            continue
        pieces.append(piece)
        yield piece
    raw = "".join(pieces).strip()
    if not raw:
        raise GenerationError(generator.name, "the generator wrote nothing")
    if _declines(raw):
        # Retrieval found evidence and the model read it and found no answer: its reply,
        # not "no evidence" (that is retrieval's finding alone).
        answer = Answer(question, raw, period=period, generator=generator.name)
    else:
        answer = cite(question, raw, passages, generator.name, period,
                      scaffold_of(generator, "answer", passages, question=question, today=today))
    if finish.truncated:
        answer.truncated = True
        answer.text += TRUNCATED_MARK
    yield answer

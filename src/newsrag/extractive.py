"""The extractive generator: answers and summaries made only of the archive's own sentences.

A sentence is scored for the question by lexical overlap (character bigrams,
weighted by how rare they are among the candidates, so 「一人一策」 counts more
than 「会议」), by dense similarity when an embedder is at hand, and by the rank
of the passage it came from; MMR then keeps the best sentences that say
different things, within a length budget. Nothing is paraphrased: a sentence
longer than the whole budget is cut at clause marks, never rewritten.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .prompts import Passage
from .text import normalize, sentence_spans

_NOT_CONTENT = re.compile(r"[\W_\d]+", re.UNICODE)
# Question words carry no evidence; removing them keeps bigrams like 「什么」 from scoring.
_QUESTION_WORDS = re.compile(r"什么时候|什么|哪些|哪个|哪里|哪儿|哪|谁|多少|多久|多长|几|怎么样|怎么|怎样|如何|为什么|为何|"
                             r"何时|是否|吗|呢|请问|有关|关于")


DENSE_CANDIDATES = 12
# A further answer sentence must score at least this share of the best one: a
# clear best match makes a short answer, evidence spread over several sentences a
# longer one (up to the generator's answer_chars).
ANSWER_FLOOR = 0.6


@dataclass
class Sentence:
    passage: int  # index into the passages list
    start: int  # span within the passage text
    end: int
    text: str
    norm: str
    score: float = 0.0


def bigrams(norm: str) -> set[str]:
    s = _NOT_CONTENT.sub(" ", norm)
    grams = set()
    for part in s.split():
        if len(part) == 1:
            grams.add(part)
        grams.update(part[i:i + 2] for i in range(len(part) - 1))
    return grams


# The attribution after a closing quote (「…。」他說。) is split off as its own
# "sentence"; alone it says nothing, so it is never picked.
_ATTRIBUTION = re.compile(r"^[^，。！？]{0,24}(?:说|說|表示|介绍|介紹|指出|称|稱|认为|認為|告诉记者|告訴記者)[。！]?$")


def split_passages(passages: list[Passage], min_chars: int = 6) -> list[Sentence]:
    out = []
    for i, p in enumerate(passages):
        for s, e in sentence_spans(p.text):
            if e - s >= min_chars and not _ATTRIBUTION.match(p.text[s:e]):
                out.append(Sentence(i, s, e, p.text[s:e], normalize(p.text[s:e])))
    return out


def _idf(sentences: list[Sentence]) -> dict[str, float]:
    df = Counter(g for s in sentences for g in bigrams(s.norm))
    n = len(sentences) + 1
    return {g: math.log(1 + n / (1 + c)) for g, c in df.items()}


def lexical_scores(query_norm: str, sentences: list[Sentence]) -> np.ndarray:
    """Share of the query's (IDF-weighted) bigrams that each sentence contains."""
    idf = _idf(sentences)
    q = bigrams(_QUESTION_WORDS.sub(" ", query_norm))
    total = sum(idf.get(g, math.log(2 + len(sentences))) for g in q) or 1.0
    return np.array([sum(idf.get(g, 0.0) for g in q & bigrams(s.norm)) / total for s in sentences])


def _mmr(scores: np.ndarray, sim: np.ndarray, lengths: list[int], budget: int, max_items: int,
         diversity: float = 0.6, floor: float = 0.0) -> list[int]:
    """Best-first picks that add something new; after the first, only sentences scoring at
    least ``floor`` times the best one (an answer is not padded with weak matches)."""
    chosen: list[int] = []
    used = 0
    candidates = [i for i in np.argsort(-scores) if scores[i] >= floor * scores.max()] or [int(np.argmax(scores))]
    while candidates and len(chosen) < max_items:
        best, best_val = None, -1e9
        for i in candidates:
            if chosen and used + lengths[i] > budget:
                continue
            redundancy = max((sim[i, j] for j in chosen), default=0.0)
            val = diversity * scores[i] - (1 - diversity) * redundancy
            if val > best_val:
                best, best_val = i, val
        if best is None or (chosen and scores[best] <= 0):
            break
        chosen.append(best)
        used += lengths[best]
        candidates.remove(best)
        if any(sim[best, j] > 0.8 for j in chosen[:-1]):  # a near-repeat: take it back
            chosen.pop()
            used -= lengths[best]
    return chosen


# A sentence opening with a demonstrative or pronoun (「这是…的回应。」「该国…」「他说…」)
# leans on the one before it, which usually names what it refers to.
_LEANS_BACK = re.compile(r"^(?:这|這|此|该|該|对此|對此|其|他|她)")


def _place(s: Sentence, passages: list[Passage]) -> tuple[str, int]:
    """Where a sentence stands in its article: (article id, offset in the article's text)."""
    p = passages[s.passage]
    return p.article_id, p.start + s.start


def _context(sentences: list[Sentence], passages: list[Passage], best: int) -> list[int]:
    """Sentences that make the best match readable and complete, in the order they are wanted.

    A news report often states the event in one sentence and gives its figure,
    cause or content in the next (「…发生自杀式炸弹袭击。」「袭击已造成至少128人
    死亡。」), so the sentence that echoes the question best is not always the one
    that answers it: its continuation comes along, and its antecedent first when it
    opens by pointing back. Neighbours are found in article order, across chunks.
    """
    places = [_place(s, passages) for s in sentences]
    article, at = places[best]
    before = [(pos, i) for i, (a, pos) in enumerate(places) if a == article and pos < at]
    after = [(pos, i) for i, (a, pos) in enumerate(places) if a == article and pos > at]
    out = []
    if before and _LEANS_BACK.match(sentences[best].text):
        out.append(max(before)[1])
    if after:
        out.append(min(after)[1])
    return out


def _overlap_matrix(sentences: list[Sentence]) -> np.ndarray:
    grams = [bigrams(s.norm) for s in sentences]
    n = len(grams)
    sim = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            union = len(grams[i] | grams[j]) or 1
            sim[i, j] = sim[j, i] = len(grams[i] & grams[j]) / union
    return sim


def _trim(sentence: Sentence, query_norm: str | None, budget: int) -> Sentence:
    """The window of whole clauses of an over-long sentence that best matches the query;
    without a query, its opening clauses (where a Chinese sentence states subject and act)."""
    clauses = [m.span() for m in re.finditer(r"[^，、：；,;:]+[，、：；,;:]?", sentence.text)]
    best, best_score = (0, min(len(sentence.text), budget)), -1.0
    for i in range(len(clauses) if query_norm else min(1, len(clauses))):
        for j in range(i, len(clauses)):
            a, b = clauses[i][0], clauses[j][1]
            if b - a > budget:
                break
            score = (len(bigrams(normalize(sentence.text[a:b])) & bigrams(query_norm)) if query_norm else 0) \
                + 0.001 * (b - a)
            if score > best_score:
                best, best_score = (a, b), score
    a, b = best
    text = sentence.text[a:b].rstrip("，、：；,;:")
    return Sentence(sentence.passage, sentence.start + a, sentence.start + a + len(text), text, normalize(text),
                    sentence.score)


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, embedder=None, answer_chars: int = 250, max_passages: int = 8):
        self.embedder = embedder
        self.answer_chars = answer_chars
        self.max_passages = max_passages

    def score(self, query: str, passages: list[Passage], sentences: list[Sentence]) -> np.ndarray:
        qn = normalize(query)
        lex = lexical_scores(qn, sentences)
        prior = np.array([1.0 / (1.0 + 0.5 * s.passage) for s in sentences])
        scores = 0.6 * lex + 0.15 * prior
        if self.embedder is not None and sentences:
            # Embedding sentences is the slow part on a CPU: only the lexical front-runners
            # are worth it, the rest keep their lexical score.
            top = np.argsort(-scores)[:DENSE_CANDIDATES]
            q = self.embedder.embed_query(qn)
            dense = self.embedder.embed_passages([sentences[i].norm for i in top]) @ q
            # e5 cosines sit in a narrow band: only their spread is informative.
            spread = (dense - dense.mean()) / (dense.std() + 1e-6)
            scores = scores.copy()
            scores[top] += 0.08 * spread
        for s, v in zip(sentences, scores):
            s.score = float(v)
        return scores

    def select(self, query: str, passages: list[Passage], budget: int, max_items: int) -> list[Sentence]:
        passages = passages[: self.max_passages]
        sentences = split_passages(passages)
        if not sentences:
            return []
        scores = self.score(query, passages, sentences)
        chosen = _mmr(scores, _overlap_matrix(sentences), [len(s.text) for s in sentences], budget, max_items,
                      floor=ANSWER_FLOOR)
        for extra in _context(sentences, passages, int(np.argmax(scores))):
            # Overlapping chunks hold some sentences twice: one copy is enough.
            copied = any(sentences[i].text == sentences[extra].text for i in chosen)
            if not copied and sum(len(sentences[i].text) for i in chosen) + len(sentences[extra].text) <= budget:
                chosen.append(extra)
        picked = [sentences[i] for i in chosen]
        if picked and len(picked[0].text) > budget:
            picked[0] = _trim(picked[0], normalize(query), budget)
        # Read in order: articles as ranked, sentences as written.
        first_seen: dict[str, int] = {}
        for s in picked:
            first_seen.setdefault(_place(s, passages)[0], len(first_seen))
        return sorted(picked, key=lambda s: (first_seen[_place(s, passages)[0]], _place(s, passages)[1]))

    def answer(self, question: str, passages: list[Passage], *, today: str = "") -> Iterator[str]:
        for s in self.select(question, passages, self.answer_chars, max_items=4):
            yield s.text + "\n"  # a line per sentence: a clause cut short still splits cleanly

    def summarize(self, topic: str, passages: list[Passage], *, period: str = "", budget_chars: int = 300) -> Iterator[str]:
        """Sentences central to the passages (and to the topic, when there is one)."""
        sentences = split_passages(passages, min_chars=14)
        if not sentences:
            return
        centroid = Counter(g for s in sentences for g in bigrams(s.norm))
        top = " ".join(g for g, _ in centroid.most_common(60))
        query = f"{topic} {top}" if topic else top
        scores = lexical_scores(normalize(query), sentences)
        # A news lead states the story: favour each article's opening sentences.
        lead = np.array([1.0 if s.start == 0 else 0.6 if s.start < 80 else 0.3 for s in sentences])
        scores = 0.7 * scores + 0.3 * lead
        chosen = _mmr(scores, _overlap_matrix(sentences), [len(s.text) for s in sentences], budget_chars, 8)
        if chosen and len(sentences[chosen[0]].text) > budget_chars:
            sentences[chosen[0]] = _trim(sentences[chosen[0]], normalize(topic) if topic else None, budget_chars)
        picked = sorted((sentences[i] for i in chosen),
                        key=lambda s: (passages[s.passage].date or "", s.passage, s.start))
        for s in picked:
            yield s.text + "\n"

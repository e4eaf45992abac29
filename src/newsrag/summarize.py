"""One article -> a short summary, no longer than ``max_chars``.

The extractive default takes the article's own words. A model backend
(transformers, openai, llamacpp) writes the summary from ``prompts/summary.txt``
and each of its sentences is traced back to the article sentence it rests on,
as answers are; a sentence with no support is kept but flagged.

The extractive method is general news summarisation, fitted to no data set:

- Units are sentences and runs of whole clauses within a sentence, so a short
  budget can still take the core of a long sentence rather than its first
  characters; a run neither starts at a clause that leans on the one before
  (「并…」「但…」) nor ends at one that announces the next (「…后，」「…表示，」).
  Bylines, datelines and editor lines are never units; a wire dateline, a 【…】
  tag and parentheticals are compressed out of a unit's text.
- A unit is worth the article's key terms it covers: content words (not
  numbers) weighted by how often the article uses them and how rare they are in
  Chinese at large (jieba's IDF table), the title's words counted double. A term counts once for
  the whole summary, so a unit that repeats what is already taken gains nothing
  (redundancy removal, as MMR does). Its gain is scaled by a lead prior on the
  sentence's position, since news states the story first.
- Selection is the budgeted greedy of Lin & Bilmes (2010): the unit with the
  most gain per character that still fits, re-evaluated lazily (gains only
  shrink), and finally compared with the best single unit. Units are read in
  article order.
"""
from __future__ import annotations

import functools
import heapq
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from .answering import Traced, cite, scaffold_of
from .extractive import is_furniture, story_start
from .generators import ChatGenerator, Generator, collect
from .prompts import Passage
from .text import is_meta_line, normalize, sentence_spans, words

MAX_TEXT_CHARS = 100_000  # longest text summarised (a long feature is ~20,000); longer is an error
MIN_MAX_CHARS, MAX_MAX_CHARS = 10, 2_000  # the range --max-chars may take
MIN_UNIT_CHARS = 6  # a shorter clause run says too little to stand alone
TITLE_WEIGHT = 2.0

_CLAUSE = re.compile(r"[^，：,:]+[，：,:]?")
_PARENTHETICAL = re.compile(r"[（(][^（）()]{0,40}[）)]")
# Connectives and pronouns that point back to the clause before (「并推出…」「至51.45美元」「其工厂…」).
_LEANS_BACK = re.compile(r"^(?:并|而|但|却|还|也|又|则|至|且|以及|及|从而|因此|所以|于是|那么|然而|不过|可是|甚至|"
                         r"方可|才|便|即|其|该|这|此|他|她|它|把|将其|对此)")
# A clause that announces what follows (「…结束后，」「…介绍，」「做法：」): a run may not end with it.
# So does an adverbial phrase (「根据试点方案，」「在预试点中，」): what it qualifies comes after.
_LEANS_FORWARD = re.compile(r"(?:[：:]|(?:后|时|前|中|期间|以来|之际|介绍|表示|说|指出|称|认为|强调|透露|获悉|了解到|显示)[，,])$"
                            r"|^(?:根据|按照|依据|依照|随着|为了|通过|对于|关于|截至|截止|据)[^，,]*[，,]$")
# A key term has a Chinese character or is a Latin word: numbers and lone letters are facts a
# clause carries, not what the article is about (and jieba's IDF table, lacking them, would
# give each the median weight of an unknown word, more than most real words).
_TERM = re.compile(r"[\u3400-\u9fff]|[a-z]{2}")
_OPEN_END = re.compile(r"[，、：；,;:\s]+$")
_OPENING_QUOTES, _CLOSING_QUOTES = "“「『‘", "”」』’"
_CLOSED = re.compile(r"(?:[。！？!?…]|[。！？!?][」』”’\"）)])$")


@dataclass
class SummarySentence:
    text: str  # as it stands in the summary (an extract may be compressed)
    start: int | None  # span of the article text it was taken from; None for a model's unsupported sentence
    end: int | None
    supported: bool = True


@dataclass
class Summary(Traced):
    text: str
    sentences: list[SummarySentence] = field(default_factory=list)
    max_chars: int = 0
    generator: str = ""
    article_id: str | None = None
    title: str = ""
    truncated: bool = False  # a model stopped at max_new_tokens


def default_max_chars(text: str) -> int:
    """A fifth of the article, between 30 and 200 characters."""
    return max(30, min(200, len(text) // 5))


def summarize(text: str, generator: Generator, *, max_chars: int | None = None, title: str = "",
              date: str | None = None, source: str = "", article_id: str | None = None) -> Summary:
    """The summary of one article's ``text`` by ``generator`` (extractive unless it is a model)."""
    if not text or not text.strip():
        raise ValueError("nothing to summarize: the text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text too long to summarize ({len(text):,} characters; at most {MAX_TEXT_CHARS:,})")
    max_chars = default_max_chars(text) if max_chars is None else int(max_chars)
    if not MIN_MAX_CHARS <= max_chars <= MAX_MAX_CHARS:
        raise ValueError(f"max_chars must be between {MIN_MAX_CHARS} and {MAX_MAX_CHARS}, not {max_chars}")
    if isinstance(generator, ChatGenerator):
        summary = _written(text, generator, max_chars, title, date, source, article_id or "")
    else:
        summary = Summary("", extract(text, max_chars, title), generator=getattr(generator, "name", "extractive"))
        summary.text = "".join(s.text for s in summary.sentences)
    if not summary.sentences:
        raise ValueError("nothing to summarize: no sentence other than bylines, datelines or editor lines")
    summary.max_chars, summary.article_id, summary.title = max_chars, article_id, title
    return summary


# ---------------------------------------------------------------- extractive


@dataclass
class _Unit:
    sentence: int  # index of its sentence in article order
    start: int
    end: int
    text: str  # compressed and closed, as it would stand in the summary
    terms: frozenset[str]


@functools.lru_cache(maxsize=1)
def _idf() -> tuple[dict[str, float], float]:
    """jieba's document frequencies of Chinese at large (shipped with jieba, no download)."""
    import jieba.analyse

    tfidf = jieba.analyse.default_tfidf
    return tfidf.idf_freq, tfidf.median_idf


def _compress(raw: str) -> str:
    """A unit's text without an opening dateline or byline, nor asides in parentheses."""
    return _PARENTHETICAL.sub("", raw[story_start(raw):]).strip()


def _close(s: str) -> str:
    """A unit as a sentence of its own: a cut-off clause ends with 。 instead of ，."""
    s = _OPEN_END.sub("", s)
    return s if not s or _CLOSED.search(s) else s + "。"


def _sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans that may be taken: not a byline, dateline or editor line."""
    return [(a, b) for a, b in sentence_spans(text)
            if not is_furniture(text[a:b]) and not is_meta_line(text[a:b])]


def _units(text: str, spans: list[tuple[int, int]], max_chars: int) -> list[_Unit]:
    """Runs of whole clauses of one sentence, each as long as the budget allows. A run may start
    and end mid-sentence (a short budget then takes a long sentence's core), but not start at a
    clause that leans on the one before (「并…」「但…」「其…」) nor end at one that announces the
    next (「…后，」「…表示，」), nor cut a quotation (「不会急于处罚。”」): cut there, it reads as a
    fragment."""
    units = []
    for k, (a, b) in enumerate(spans):
        clauses = [(a + m.start(), a + m.end()) for m in _CLAUSE.finditer(text[a:b])]
        terms = [frozenset(words(normalize(_compress(text[s:e])))) for s, e in clauses]
        # A quotation that runs over several sentences cannot be kept whole: its sentences are
        # taken from their start.
        quoted_across = not _quotes_balanced(text[a:b])
        for i, (start, _) in enumerate(clauses):
            if i and (quoted_across or _LEANS_BACK.match(normalize(_compress(text[start:clauses[i][1]])))):
                continue
            for j in range(i, len(clauses)):
                end = clauses[j][1]
                body = _compress(text[start:end])
                out = _close(body)
                if len(out) > max_chars:
                    if j == i:  # a clause longer than the whole budget: its opening words
                        out = _head(body, max_chars)
                        units.append(_Unit(k, start, end, out, frozenset(words(normalize(out)))))
                    break
                ends_sentence = j == len(clauses) - 1
                if len(_OPEN_END.sub("", body)) >= MIN_UNIT_CHARS and \
                        (quoted_across or _quotes_balanced(text[a:start]) and _quotes_balanced(text[start:end])) and \
                        (ends_sentence or not _LEANS_FORWARD.search(normalize(text[clauses[j][0]:end]).strip())):
                    units.append(_Unit(k, start, end, out, frozenset().union(*terms[i:j + 1])))
    return units


def _quotes_balanced(s: str) -> bool:
    """Every quotation in ``s`` opens and closes inside it."""
    depth = 0
    for ch in s:
        depth += (ch in _OPENING_QUOTES) - (ch in _CLOSING_QUOTES)
        if depth < 0:
            return False
    return depth == 0


def _head(clause: str, max_chars: int) -> str:
    """The words of ``clause`` that fit in ``max_chars`` with the closing mark, cut between words."""
    import jieba

    out = ""
    for w in jieba.lcut(clause):
        if len(out) + len(w) + 1 > max_chars:
            break
        out += w
    return (out or clause[: max_chars - 1]) + "…"


def _weights(spans: list[tuple[int, int]], text: str, title: str) -> dict[str, float]:
    """Each content word's weight: (1 + log of its count in the article) x its IDF, the title's doubled."""
    idf, median = _idf()
    tf = Counter(w for a, b in spans for w in words(normalize(text[a:b])) if _TERM.search(w))
    weights = {w: (1 + math.log(n)) * idf.get(w, median) for w, n in tf.items()}
    for w in set(words(normalize(title))) & weights.keys():
        weights[w] *= TITLE_WEIGHT
    return weights


def extract(text: str, max_chars: int, title: str = "") -> list[SummarySentence]:
    """The article's own clauses that cover most of its key terms within ``max_chars``, in article order."""
    spans = _sentences(text)
    units = _units(text, spans, max_chars)
    if not units:
        return []
    weights = _weights(spans, text, title)
    prior = [1 / math.sqrt(1 + k) for k in range(len(spans))]

    def gain(u: _Unit, covered: set[str]) -> float:
        return prior[u.sentence] * sum(weights.get(w, 0.0) for w in u.terms - covered)

    chosen: list[_Unit] = []
    covered: set[str] = set()
    used = 0
    heap = [(-gain(u, covered) / len(u.text), n) for n, u in enumerate(units)]
    heapq.heapify(heap)
    while heap:
        _, n = heapq.heappop(heap)
        u = units[n]
        if used + len(u.text) > max_chars or any(u.start < c.end and c.start < u.end for c in chosen):
            continue  # no longer fits, or overlaps what is taken: never will
        ratio = gain(u, covered) / len(u.text)
        if heap and ratio < -heap[0][0]:
            heapq.heappush(heap, (-ratio, n))  # its gain shrank: re-queue it where it now stands
            continue
        if ratio <= 0:
            break
        chosen.append(u)
        covered |= u.terms
        used += len(u.text)
    best = max(units, key=lambda u: gain(u, set()))
    if gain(best, set()) > sum(gain(u, set().union(*(c.terms for c in chosen[:i]))) for i, u in enumerate(chosen)):
        chosen = [best]
    return _render(text, sorted(chosen, key=lambda u: u.start), max_chars)


def _render(text: str, units: list[_Unit], max_chars: int) -> list[SummarySentence]:
    """Taken units as summary sentences; neighbouring clauses of one sentence read as one."""
    out: list[SummarySentence] = []
    last: _Unit | None = None
    for u in units:
        if out and last is not None and last.sentence == u.sentence and text[last.end:u.start].strip() == "":
            merged = _close(_compress(text[out[-1].start:u.end]))
            if len(merged) <= len(out[-1].text) + len(u.text):
                out[-1] = SummarySentence(merged, out[-1].start, u.end)
                last = u
                continue
        out.append(SummarySentence(u.text, u.start, u.end))
        last = u
    assert sum(len(s.text) for s in out) <= max_chars
    return out


# ---------------------------------------------------------------- a model writes


def _written(text: str, generator: ChatGenerator, max_chars: int, title: str, date: str | None, source: str,
             article_id: str) -> Summary:
    passage = Passage(1, article_id, title, date, source, text)
    values = dict(topic=title, period=date or "")
    raw, truncated = collect(generator.summarize(title, [passage], period=values["period"], budget_chars=max_chars,
                                                 prompt="summary"))
    cited = cite(title, raw, [passage], generator.name,
                 scaffold=scaffold_of(generator, "summary", [passage], **values, budget_chars=str(max_chars)))
    sources = {c.n: c for c in cited.citations}
    taken, used = [], 0
    for s in cited.sentences:
        c = sources[s.citations[0]] if s.supported else None
        if used + len(s.text) > max_chars:
            if not taken:  # the model's first sentence alone is over the limit: cut it
                taken.append(SummarySentence(s.text[: max_chars - 1] + "…", c and c.start, c and c.end, s.supported))
            break
        taken.append(SummarySentence(s.text, c and c.start, c and c.end, s.supported))
        used += len(s.text)
    return Summary("".join(s.text for s in taken), taken, generator=generator.name, truncated=truncated)

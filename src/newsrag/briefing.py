"""Topic and/or date range -> Briefing: themes with cited summaries, and a timeline.

Articles are selected (near-duplicates are already folded into one canonical
copy at ingest), grouped into themes by k-means on their stored vectors, and
each theme gets a headline, a cited summary from the generator and dated
timeline lines. Nothing is embedded again: the vectors come from the index.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .answering import TRUNCATED_MARK, Citation, cite, marked_text, scaffold_of
from .dates import UNDATED, event_date
from .generators import Generator, collect
from .prompts import Passage
from .text import normalize, sentence_spans

LEAD_CHARS = 360  # a news lead: what the story is, who, when
MAX_THEMES = 8
TIMELINE_PER_THEME = 4  # the briefing's own timeline keeps each theme's most central stories


@dataclass
class TimelineEntry:
    date: str | None
    text: str
    citation: int


@dataclass
class Theme:
    headline: str
    summary: str  # sentences with inline markers [n]
    article_ids: list[str]
    first_date: str | None
    last_date: str | None
    timeline: list[TimelineEntry] = field(default_factory=list)
    truncated: bool = False  # the model stopped at max_new_tokens: the summary ends with TRUNCATED_MARK


@dataclass
class Briefing:
    topic: str
    since: str | None
    until: str | None
    themes: list[Theme] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    articles: int = 0
    duplicates_folded: int = 0
    generator: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        period = f"{self.since or '…'} — {self.until or '…'}"
        title = f"# 简报：{self.topic}" if self.topic else "# 新闻简报"
        lines = [title, "", f"时间范围：{period}　文章：{self.articles} 篇"
                 + (f"（另有 {self.duplicates_folded} 篇转载已合并）" if self.duplicates_folded else ""), ""]
        if not self.themes:
            lines += ["这一时间范围内没有相关文章。", ""]
        for i, t in enumerate(self.themes, 1):
            first, last = t.first_date or UNDATED, t.last_date or UNDATED
            span = first if first == last else f"{first} — {last}"
            lines += [f"## {i}. {t.headline}", "", f"*{len(t.article_ids)} 篇，{span}*", "", t.summary, ""]
        if self.timeline:
            lines += ["## 时间线", ""]
            lines += [f"- **{e.date or UNDATED}** {e.text} [{e.citation}]" for e in self.timeline]
            lines.append("")
        if self.citations:
            lines += ["## 来源", ""]
            for c in self.citations:
                meta = "，".join(x for x in (c.date, c.source) if x)
                lines.append(f"{c.n}. {c.title}（{meta}）：「{c.quote}」 `{c.article_id}`")
            lines.append("")
        return "\n".join(lines)


def lead(text: str, limit: int = LEAD_CHARS) -> str:
    """The opening sentences of an article, whole, up to ``limit`` characters."""
    end = 0
    for _, e in sentence_spans(text):
        if e > limit and end:
            break
        end = e
    return text[:end]


def cluster(vectors: np.ndarray, k: int, seed: int = 1234) -> np.ndarray:
    """Spherical k-means labels (FAISS), deterministic for a given input."""
    if k <= 1 or len(vectors) <= k:
        return np.zeros(len(vectors), dtype=int) if k <= 1 else np.arange(len(vectors))
    import faiss

    # Articles of one archive share a common direction (same city, same outlet style):
    # removing it lets the topics, not the locale, decide the clusters.
    x = vectors - vectors.mean(axis=0)
    x = np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9), dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=25, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1)
    km.train(x)
    _, labels = km.index.search(x, 1)
    return labels[:, 0]


def n_themes(n_articles: int) -> int:
    return max(1, min(MAX_THEMES, round(math.sqrt(n_articles))))


class _Citations:
    """Global citation numbers for a briefing, one per quoted span."""

    def __init__(self):
        self.items: list[Citation] = []
        self._by_key: dict[tuple[str, int, str], int] = {}

    def add(self, c: Citation) -> int:
        key = (c.article_id, c.start, c.quote)
        if key not in self._by_key:
            c.n = len(self.items) + 1
            self.items.append(c)
            self._by_key[key] = c.n
        return self._by_key[key]


def build(articles: list[dict], vectors: np.ndarray, generator: Generator, *, topic: str = "",
          since: str | None = None, until: str | None = None, duplicates_folded: int = 0,
          summary_chars: int = 240, progress: Callable[[int, int, str], None] | None = None) -> Briefing:
    """articles: dicts with id, title, date, source, text (canonical copies, any order)."""
    t0 = time.time()
    brief = Briefing(topic, since, until, articles=len(articles), duplicates_folded=duplicates_folded,
                     generator=generator.name)
    if not articles:
        return brief
    labels = cluster(vectors, n_themes(len(articles)))
    title_counts = Counter(a["title"] for a in articles)
    cites = _Citations()
    overall: list[TimelineEntry] = []
    groups = sorted({int(g) for g in labels}, key=lambda g: -int((labels == g).sum()))
    for step, g in enumerate(groups, 1):
        members = [i for i in range(len(articles)) if labels[i] == g]
        members.sort(key=lambda i: (articles[i]["date"] or "", articles[i]["id"]))
        centroid = vectors[members].mean(axis=0)
        central = sorted(members, key=lambda i: -float(vectors[i] @ centroid))
        # A recurring bulletin title (「国内联播快讯」) says nothing about the theme.
        head = next((i for i in central if title_counts[articles[i]["title"]] == 1), central[0])
        passages = [Passage(n + 1, articles[i]["id"], articles[i]["title"], articles[i]["date"],
                            articles[i]["source"], lead(articles[i]["text"])) for n, i in enumerate(members)]
        values = dict(topic=topic or articles[head]["title"], period=f"{since or '…'} — {until or '…'}")
        text, truncated = collect(generator.summarize(values["topic"], passages, period=values["period"],
                                                      budget_chars=summary_chars))
        cited = cite(topic, text, passages, generator.name,
                     scaffold=scaffold_of(generator, "briefing", passages, **values))
        renumber = {c.n: cites.add(c) for c in cited.citations}
        summary = marked_text(cited.sentences, renumber.get) + (TRUNCATED_MARK if truncated else "")
        theme = Theme(articles[head]["title"], summary, [articles[i]["id"] for i in members],
                      articles[members[0]]["date"], articles[members[-1]]["date"], truncated=truncated)
        prominent = set(central[:TIMELINE_PER_THEME])
        for i in members:
            a = articles[i]
            first = lead(a["text"], 1)
            line = a["title"] if title_counts[a["title"]] == 1 else first[:80]
            quote_start = 0 if line == first[:80] else -1
            n = cites.add(Citation(0, a["id"], a["title"], a["date"], a["source"], line,
                                   max(quote_start, 0), len(line) if quote_start == 0 else 0))
            entry = TimelineEntry(event_date(normalize(first), a["date"]) or a["date"], line, n)
            theme.timeline.append(entry)
            if i in prominent:
                overall.append(entry)
        brief.themes.append(theme)
        if progress:
            progress(step, len(groups), theme.headline)
    brief.timeline = sorted(overall, key=lambda e: (e.date or "", e.citation))
    brief.citations = cites.items
    brief.seconds = time.time() - t0
    return brief

"""Topic and/or date range -> Briefing: themes with cited summaries, and a timeline.

Articles are selected (near-duplicates are already folded into one canonical
copy at ingest) and grouped into themes by what they say. Two articles are
alike by the words of their headline and lead (TF-IDF over the selection, so a
word every article has decides nothing) and by their stored vectors;
average-linkage clustering joins articles only while a group stays alike on
average, so the number of themes follows the material instead of being fixed.
A story alike to no other goes under 「其他」 rather than into a theme it does not
fit. Each theme is labelled with its keywords (words most of its articles share
and few others have), and gets a headline, a cited summary from the generator
and dated timeline lines. Nothing is embedded again: the vectors come from the index.

How well themes hold together is measured by ``coherence`` (how many of their
theme's top keywords the articles contain); benchmarks/briefing.py prints it
beside the previous clustering (``method="kmeans"``: k-means on the vectors
alone, every article in some theme).
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
from .extractive import opening
from .generators import Generator, collect
from .prompts import Passage
from .text import normalize, sentence_spans, topic_words

LEAD_CHARS = 360  # a news lead: what the story is, who, when
MAX_THEMES = 12  # a page of themes; the smaller ones go under OTHER
MIN_THEME = 2  # articles a theme needs; a story alike to no other is not a theme
OTHER = "其他"
KEYWORDS = 5
COHERENCE_TOP = 3  # coherence counts a theme's first keywords
FIT_KEYWORDS = 10  # an article stays in its group if it has one of the others' first keywords
# Similarity of two articles: this much from shared words, the rest from their vectors.
WORD_WEIGHT = 0.5
# Average-linkage groups stay at least this alike on average (1 - the distance cut).
MIN_SIMILARITY = 0.1
TIMELINE_PER_THEME = 4  # the briefing's own timeline keeps each theme's most central stories
METHODS = ("agglomerative", "kmeans")
KMEANS_THEMES = 8  # method="kmeans": sqrt(articles) themes, at most this many


@dataclass
class TimelineEntry:
    date: str | None
    text: str
    citation: int


@dataclass
class Theme:
    headline: str  # the title of its most central story; OTHER for the stories that fit no theme
    summary: str  # sentences with inline markers [n] ("" for OTHER: its stories share no story)
    article_ids: list[str]
    first_date: str | None
    last_date: str | None
    timeline: list[TimelineEntry] = field(default_factory=list)
    truncated: bool = False  # the model stopped at max_new_tokens: the summary ends with TRUNCATED_MARK
    keywords: list[str] = field(default_factory=list)  # what its articles share, most telling first
    other: bool = False  # the stories that fit no theme, under OTHER


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
    coherence: float | None = None  # see coherence(); None without themes
    first_date: str | None = None  # of the articles it covers
    last_date: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def period(self) -> str:
        """The period asked for, completed by the articles' own first and last dates."""
        since, until = self.since or self.first_date, self.until or self.last_date
        if not (since or until):
            return UNDATED if self.articles else "不限"
        return since if since == until else f"{since or '不限'} — {until or '不限'}"

    def to_markdown(self) -> str:
        title = f"# 简报：{self.topic}" if self.topic else "# 新闻简报"
        if not self.articles:
            asked = f"没有找到关于「{self.topic}」的文章：" if self.topic else ""
            return "\n".join([title, "", f"时间范围：{self.period()}", "", f"{asked}这一时间范围内没有相关文章。", ""])
        lines = [title, "", f"时间范围：{self.period()}　文章：{self.articles} 篇"
                 + (f"（另有 {self.duplicates_folded} 篇转载已合并）" if self.duplicates_folded else ""), ""]
        for i, t in enumerate(self.themes, 1):
            first, last = t.first_date or UNDATED, t.last_date or UNDATED
            span = first if first == last else f"{first} — {last}"
            lines += [f"## {i}. {t.headline}", "", f"*{len(t.article_ids)} 篇，{span}*"
                      + (f"　关键词：{'、'.join(t.keywords)}" if t.keywords else ""), ""]
            if t.other:
                lines += [f"- **{e.date or UNDATED}** {e.text} [{e.citation}]" for e in t.timeline]
                lines.append("")
            else:
                lines += [t.summary, ""]
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
    """Spherical k-means labels (FAISS), deterministic for a given input (``method="kmeans"``)."""
    if k <= 1 or len(vectors) <= k:
        return np.zeros(len(vectors), dtype=int) if k <= 1 else np.arange(len(vectors))
    import faiss

    x = np.ascontiguousarray(_centred(vectors), dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=25, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1)
    km.train(x)
    _, labels = km.index.search(x, 1)
    return labels[:, 0]


def n_themes(n_articles: int) -> int:
    """The number of themes k-means is asked for (``method="kmeans"``)."""
    return max(1, min(KMEANS_THEMES, round(math.sqrt(n_articles))))


def _centred(vectors: np.ndarray) -> np.ndarray:
    # Articles of one archive share a common direction (same city, same outlet style):
    # removing it lets the topics, not the locale, decide the clusters.
    x = vectors - vectors.mean(axis=0)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def article_words(article: dict, recurring: bool = False) -> list[str]:
    """What an article is about: the content words of its headline (twice: it names the story)
    and lead. A ``recurring`` headline (「国内联播快讯」 over a day's bulletin) names no story."""
    title = "" if recurring else f"{article['title']}\n" * 2
    return topic_words(normalize(title + lead(article["text"])))


def similarity(bags: list[list[str]], vectors: np.ndarray) -> np.ndarray:
    """Pairwise likeness of articles: shared telling words (TF-IDF cosine) and vectors (centred cosine)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not any(bags):
        by_words = np.zeros((len(bags), len(bags)))
    else:
        x = TfidfVectorizer(analyzer=lambda bag: bag, sublinear_tf=True).fit_transform(bags)
        by_words = (x @ x.T).toarray()
    # Centring two or three articles leaves vectors that point apart whatever they say.
    by_vectors = _centred(vectors) @ _centred(vectors).T if len(vectors) > 3 else vectors @ vectors.T
    return WORD_WEIGHT * by_words + (1 - WORD_WEIGHT) * by_vectors


def group(sim: np.ndarray) -> np.ndarray:
    """Cluster labels from pairwise similarity: average linkage, cut where groups stop being alike."""
    if len(sim) < 2:
        return np.zeros(len(sim), dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    distance = np.clip(1.0 - sim, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    return AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                   distance_threshold=1.0 - MIN_SIMILARITY).fit_predict(distance)


def fit(labels: np.ndarray, bags: list[set[str]]) -> np.ndarray:
    """Themes that hold together: an article that shares none of the keywords of the rest of
    its group leaves it, groups under MIN_THEME articles dissolve, and only the MAX_THEMES
    largest stay. Returns labels 0, 1, … (largest first) and -1 for the stories that fit no
    theme (OTHER)."""
    labels = np.array(labels)
    for g in set(labels.tolist()):
        members = [i for i in range(len(labels)) if labels[i] == g]
        for i in members if len(members) > MIN_THEME else ():
            # What the others share, not counting i: an outlier cannot vote itself in.
            if not bags[i] & set(keywords(bags, [j for j in members if j != i], FIT_KEYWORDS)):
                labels[i] = -1
        if len(members) == MIN_THEME and not keywords(bags, members):
            labels[members] = -1  # a pair with nothing telling in common
    sizes = Counter(g for g in labels.tolist() if g != -1)
    kept = [g for g, c in sorted(sizes.items(), key=lambda gc: (-gc[1], gc[0])) if c >= MIN_THEME][:MAX_THEMES]
    rank = {g: r for r, g in enumerate(kept)}
    return np.array([rank.get(g, -1) for g in labels.tolist()])


def keywords(bags: list[set[str]], members: list[int], n: int = KEYWORDS) -> list[str]:
    """Words most members share and the other articles seldom have, most telling first."""
    df = Counter(w for bag in bags for w in bag)
    inside = Counter(w for i in members for w in bags[i])
    need = min(MIN_THEME, len(members))
    scored = [((c / len(members)) * math.log(len(bags) / df[w]), w) for w, c in inside.items() if c >= need]
    return [w for score, w in sorted(scored, key=lambda sw: (-sw[0], sw[1])) if score > 0][:n]


def coherence(bags: list[set[str]], themes: list[tuple[list[int], list[str]]], top: int = COHERENCE_TOP) -> float | None:
    """How well themes hold together: over the articles in a theme, the mean share of their
    theme's first ``top`` keywords they contain (1.0: every article has them all). The
    stories under OTHER do not count; how many there are is reported beside it."""
    shares = [len(bags[i] & set(kw[:top])) / len(kw[:top]) if kw else 0.0
              for members, kw in themes for i in members]
    return sum(shares) / len(shares) if shares else None


def bags_of(articles: list[dict]) -> list[list[str]]:
    """Each article's words (article_words), a headline shared by several articles left out."""
    titles = Counter(a["title"] for a in articles)
    return [article_words(a, titles[a["title"]] > 1) for a in articles]


def themes_of(articles: list[dict], vectors: np.ndarray, method: str = "agglomerative",
              bags: list[list[str]] | None = None) -> np.ndarray:
    """Theme labels for the articles: 0, 1, … largest first, -1 for OTHER."""
    if method == "kmeans":
        labels = cluster(vectors, n_themes(len(articles)))
        order = [g for g, _ in sorted(Counter(labels.tolist()).items(), key=lambda gc: (-gc[1], gc[0]))]
        return np.array([order.index(g) for g in labels.tolist()])
    if method != "agglomerative":
        raise ValueError(f"unknown clustering method {method!r} ({', '.join(METHODS)})")
    bags = bags if bags is not None else bags_of(articles)
    return fit(group(similarity(bags, vectors)), [set(b) for b in bags])


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
          summary_chars: int = 240, progress: Callable[[int, int, str], None] | None = None,
          method: str = "agglomerative") -> Briefing:
    """articles: dicts with id, title, date, source, text (canonical copies, any order)."""
    t0 = time.time()
    brief = Briefing(topic, since, until, articles=len(articles), duplicates_folded=duplicates_folded,
                     generator=generator.name)
    if not articles:
        return brief
    dates = sorted(a["date"] for a in articles if a["date"])
    brief.first_date, brief.last_date = (dates[0], dates[-1]) if dates else (None, None)
    bags = bags_of(articles)
    labels = themes_of(articles, vectors, method, bags)
    if (labels == -1).all() and (topic or len(articles) == 1):
        # Nothing narrower holds together: the articles of a topic (or a lone story) are one theme.
        labels[:] = 0
    sets = [set(b) for b in bags]
    title_counts = Counter(a["title"] for a in articles)
    cites = _Citations()
    overall: list[TimelineEntry] = []
    groups = sorted(set(labels.tolist()), key=lambda g: (g == -1, g))  # OTHER last
    measured = []
    for step, g in enumerate(groups, 1):
        members = [i for i in range(len(articles)) if labels[i] == g]
        members.sort(key=lambda i: (articles[i]["date"] or "", articles[i]["id"]))
        if g == -1:
            theme = Theme(OTHER, "", [articles[i]["id"] for i in members], articles[members[0]]["date"],
                          articles[members[-1]]["date"], other=True)
            central = members
        else:
            centroid = vectors[members].mean(axis=0)
            central = sorted(members, key=lambda i: -float(vectors[i] @ centroid))
            theme = _summarised(articles, members, central, title_counts, generator, cites, topic,
                                brief.period(), summary_chars)
            theme.keywords = keywords(sets, members)
            measured.append((members, theme.keywords))
        prominent = set(central[:TIMELINE_PER_THEME]) if g != -1 else set()
        for i in members:
            a = articles[i]
            start, end = opening(a["text"])
            first = a["text"][start:end]
            if title_counts[a["title"]] == 1:  # the headline, which stands in no span of the text
                line, start, end = a["title"], 0, 0
            else:  # a recurring headline says nothing: the story's first words instead
                line = first[:80]
                end = start + len(line)
            n = cites.add(Citation(0, a["id"], a["title"], a["date"], a["source"], line, start, end))
            entry = TimelineEntry(event_date(normalize(first), a["date"]) or a["date"], line, n)
            theme.timeline.append(entry)
            if i in prominent:
                overall.append(entry)
        brief.themes.append(theme)
        if progress:
            progress(step, len(groups), theme.headline)
    brief.coherence = coherence(sets, measured)
    brief.timeline = sorted(overall, key=lambda e: (e.date or "", e.citation))
    brief.citations = cites.items
    brief.seconds = time.time() - t0
    return brief


def _summarised(articles: list[dict], members: list[int], central: list[int], title_counts: Counter,
                generator: Generator, cites: _Citations, topic: str, period: str, summary_chars: int) -> Theme:
    """A theme with its headline and the generator's cited summary of its articles' leads."""
    # A recurring bulletin title (「国内联播快讯」) says nothing about the theme.
    head = next((i for i in central if title_counts[articles[i]["title"]] == 1), central[0])
    passages = [Passage(n + 1, articles[i]["id"], articles[i]["title"], articles[i]["date"],
                        articles[i]["source"], lead(articles[i]["text"])) for n, i in enumerate(members)]
    values = dict(topic=topic or articles[head]["title"], period=period)
    text, truncated = collect(generator.summarize(values["topic"], passages, period=values["period"],
                                                  budget_chars=summary_chars))
    cited = cite(topic, text, passages, generator.name, scaffold=scaffold_of(generator, "briefing", passages, **values))
    renumber = {c.n: cites.add(c) for c in cited.citations}
    summary = marked_text(cited.sentences, renumber.get) + (TRUNCATED_MARK if truncated else "")
    return Theme(articles[head]["title"], summary, [articles[i]["id"] for i in members],
                 articles[members[0]]["date"], articles[members[-1]]["date"], truncated=truncated)

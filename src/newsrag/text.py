"""Chinese text: cleaning, script normalization, sentences and search tokens.

Everything here is a pure function of strings, so the loaders, the chunker, the
index and the query side all normalise text the same way.
"""
from __future__ import annotations

import functools
import logging
import re
import unicodedata

# Crawlers of some Chinese sites leave a pinyin reading after a character:
# 「進(jìn)」. A gloss is a single syllable in ASCII parentheses right after a Han
# character, carrying a tone mark (or being one of the toneless particles).
# Real parentheses 「(試行)」, 「(記者 張可馨)」, 「(AI)」 never match.
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜńňǹḿ"
_NEUTRAL = "de|le|me|men|ma|ne|ba|zi|zhe|guo|ge|li|tou"
_GLOSS = re.compile(
    r"(?<=[\u3400-\u9fff])[(（]"
    rf"(?:[a-zü]*[{_TONED}][a-zü]*|{_NEUTRAL})"
    r"[)）]"
)

# Lines that are page furniture, not the story: kept as metadata, not as text.
_META_LINE = re.compile(
    r"^[【\[（(]?\s*(?P<key>责编|責編|责任编辑|責任編輯|编辑|編輯|校对|校對|审核|審核|审校|審校|"
    r"监制|監製|编审|編審|终审|終審|值班编辑|值班編輯|来源|來源|稿源|本文来源|本文來源|原标题|原標題|"
    r"作者|记者|記者|摄影|攝影)\s*[:：]\s*(?P<value>[^】\]）)]{1,60}?)\s*[】\]）)]?\s*$"
)
_META_KEYS = {
    "责编": "editor", "責編": "editor", "责任编辑": "editor", "責任編輯": "editor",
    "编辑": "editor", "編輯": "editor", "值班编辑": "editor", "值班編輯": "editor",
    "校对": "proofreader", "校對": "proofreader", "审核": "reviewer", "審核": "reviewer",
    "审校": "reviewer", "審校": "reviewer", "监制": "producer", "監製": "producer",
    "编审": "reviewer", "編審": "reviewer", "终审": "reviewer", "終審": "reviewer",
    "来源": "source", "來源": "source", "稿源": "source", "本文来源": "source",
    "本文來源": "source", "原标题": "original_title", "原標題": "original_title",
    "作者": "author", "记者": "author", "記者": "author", "摄影": "photographer",
    "攝影": "photographer",
}
_DROP_LINE = re.compile(
    r"^\s*(?:[（(]\s*(?:完|END|end)\s*[）)]|分享到.*|扫一扫.*|掃一掃.*|打印本页|关闭窗口|關閉窗口|"
    r"【纠错】.*|【糾錯】.*|免责声明.*|免責聲明.*|版权声明.*|版權聲明.*|返回顶部|返回頂部)\s*$"
)

# Half-width punctuation between Han characters becomes the full-width form
# Chinese typesetting uses, so that sentence splitting and display agree.
_HALF_TO_FULL = {",": "，", ";": "；", ":": "：", "?": "？", "!": "！", "(": "（", ")": "）"}
_HAN = r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef「」『』“”]"
_HALF_PUNCT = re.compile(rf"(?<={_HAN})[,;:?!]|[,;:?!](?={_HAN})|(?<={_HAN})\(|\((?={_HAN})|(?<={_HAN})\)|\)(?={_HAN})")


# Full-width Latin letters and digits and the ideographic space, to ASCII (a table for
# str.translate: C speed and no per-character list, which matters on long articles).
_HALF_WIDTH = {0x3000: " ", **{c: c - 0xFEE0 for r in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
                               for c in range(r[0], r[1] + 1)}}


def _to_half_width_alnum(text: str) -> str:
    """Full-width Latin letters, digits and spaces to ASCII; CJK punctuation stays."""
    return text.translate(_HALF_WIDTH)


def one_line(text, limit: int = 500) -> str:
    """Any message as a single line of at most ``limit`` characters (for errors shown to people)."""
    line = " ".join(str(text).split())
    return line[: limit - 1] + "…" if len(line) > limit else line


def normalize_width(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _to_half_width_alnum(text)
    return _HALF_PUNCT.sub(lambda m: _HALF_TO_FULL[m.group(0)], text)


def remove_glosses(text: str) -> str:
    return _GLOSS.sub("", text)


def clean(raw: str) -> tuple[str, dict[str, str]]:
    """Return (clean text, metadata lines pulled out of it).

    Glosses are removed, widths normalised, blank runs collapsed, and
    boilerplate lines (「責編: 莊恩慧」, 「来源：…」) moved into the metadata.
    """
    text = remove_glosses(raw.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", ""))
    text = normalize_width(text)
    meta: dict[str, str] = {}
    kept = []
    for line in text.split("\n"):
        line = re.sub(r"[ \t\u00a0]+", " ", line).strip()
        if not line:
            continue
        m = _META_LINE.match(line)
        if m:
            meta.setdefault(_META_KEYS[m.group("key")], m.group("value").strip())
            continue
        if _DROP_LINE.match(line):
            continue
        kept.append(line)
    return "\n".join(kept), meta


def is_meta_line(line: str) -> bool:
    """An editor, proofreader, source or byline line (「責編: 莊恩慧」): page furniture, not story."""
    return bool(_META_LINE.match(line.strip()))


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Phrase-level traditional -> simplified (OpenCC); simplified text passes through."""
    return _t2s().convert(text) if text else text


def normalize(text: str) -> str:
    """The form that is indexed and queried: clean width, simplified script, lower case."""
    return to_simplified(normalize_width(text)).lower()


# A sentence ends at 。！？；… (or ASCII !?;) plus any closing quotes, or at a line end.
_SENTENCE = re.compile(r".*?(?:[。！？!?；;]+|…+|\n|$)[」』”’\"）)\]]*", re.S)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``, whitespace trimmed."""
    spans = []
    for m in _SENTENCE.finditer(text):
        start, end = m.span()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


_STOPWORDS = frozenset(
    "的 了 是 在 和 与 及 或 也 都 就 而 并 把 被 对 为 于 以 之 其 这 那 有 个 中 上 下 将 已 等 "
    "吗 呢 吧 啊 么 什么 哪些 哪个 哪 怎么 怎样 怎么样 如何 为什么 为何 多少 多久 多长 几 谁 何 何时 "
    "时候 什么时候 是否 请问 关于 一 一个 我 你 他 她 它 我们 他们 该 此 从 到 由 给 让 向 "
    # question words: they ask, they are not what the question is about
    "哪里 哪儿 哪位 哪种 哪家 哪天 哪年 哪国 什么样 多大 多高 多远 第几 几个 几天 第几天 何地 何处 何种 何人 "
    "干什么 做什么".split()
)
_WORD = re.compile(r"\w", re.UNICODE)


@functools.lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokens(normalized: str) -> list[str]:
    """BM25 tokens of already-normalized text: jieba search-mode words, no stopwords."""
    out = []
    for tok in _jieba().lcut_for_search(normalized):
        tok = tok.strip()
        if tok and _WORD.search(tok) and tok not in _STOPWORDS:
            out.append(tok)
    return out


def words(normalized: str) -> list[str]:
    """Content words of already-normalized text, each once where it stands: jieba precise
    mode (not search mode, whose overlapping pieces would count one word several times)."""
    return [w for w in _jieba().lcut(normalized) if _WORD.search(w) and w not in _STOPWORDS]


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """「1 article」, 「2 articles」: counts in English messages."""
    return f"{n} {noun if n == 1 else plural_form or noun + 's'}"


_NUMERIC = re.compile(r"^[\d.,%％]+$|^[零〇一二两三四五六七八九十百千万亿]+$")
# Parts of speech that name what a text is about: nouns (people, places, organisations, other
# proper nouns), verbal nouns (「分类」「投放」), idioms and abbreviations, Latin words.
_CONTENT_POS = ("n", "vn", "eng", "i", "j", "l")


def topic_words(normalized: str) -> list[str]:
    """The content words of already-normalized text, as keywords name a topic: jieba's
    nouns, verbal nouns and set phrases of two characters or more (no verbs such as
    「表示」, no bare numbers), without the overlapping sub-words of tokens()."""
    _jieba()  # initialised quietly
    import jieba.posseg

    return [p.word for p in jieba.posseg.cut(normalized)
            if len(p.word) > 1 and p.flag.startswith(_CONTENT_POS) and p.word not in _STOPWORDS
            and not _NUMERIC.match(p.word)]


def coverage(query: str, text: str) -> float:
    """Share of the query's search tokens that occur in ``text`` (both raw, any script)."""
    # Single characters (「名」「较」) are too common to show that a text is about the query.
    words = {w for w in tokens(normalize(query)) if len(w) > 1} or set(tokens(normalize(query)))
    if not words:
        return 0.0
    return len(words & set(tokens(normalize(text)))) / len(words)

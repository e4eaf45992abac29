"""The extractive generator: answers and summaries made only of the archive's own sentences.

A sentence is scored for the question by lexical overlap (character bigrams,
weighted by how rare they are among the candidates, so 「一人一策」 counts more
than 「会议」; its article's title counts a little, since a sentence often leaves
out the subject its headline names), by dense similarity when an embedder is at
hand, by the rank of the passage it came from, and by whether it holds the kind
of words the question asks for (a date for 「什么时候」, a number for 「多少」, a
name for 「谁」, a place for 「哪里」). MMR then keeps the best sentences that say
different things, within a length budget, and the answer opens with the best one.
Bylines, datelines and editor lines are page furniture, never evidence. Nothing
is paraphrased: a sentence longer than the whole budget is cut at clause marks,
never rewritten.
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
# How much of a sentence's lexical match may come from its article's title.
TITLE_SHARE = 0.3
# A sentence without the kind of words the question asks for keeps this share of its score.
WRONG_KIND = 0.5
# ... and so does one from a passage that has none of the question's words most passages share.
OFF_TOPIC = 0.5
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


# A byline (「本報記者 梁振宇」, 「（記者 林雨桐）」) or a dateline (「新华社北京3月1日电」,
# 「2024年3月12日 来源：臨江日報」) standing alone: page furniture, never an answer.
_FURNITURE = re.compile(
    r"^[（(【\[]?\s*(?:"
    r"[\u4e00-\u9fff]{0,6}(?:记者|記者|通讯员|通訊員|编辑|編輯|责编|責編|撰稿|摄影|攝影|作者|来源|來源|稿源)"
    r"\s*[:：]?\s*[\w·•、 ]{0,24}?(?:报道|報道)?"
    r"|[\u4e00-\u9fff]{0,8}?\d{1,2}月\d{1,2}日\s*(?:电|電|讯|訊)"
    r"|\d{4}\s*[年\-/.]\s*\d{1,2}\s*[月\-/.]\s*\d{1,2}\s*日?(?:\s*[\d:：]+)?(?:\s*(?:来源|來源)\s*[:：]?\s*\S{0,20}?)?"
    r")\s*[）)】\]]?\s*[。.]?$")
# The same furniture opening a sentence of the story: 「本报讯（记者 孙立）本学期以来，…」,
# 「青溪融媒讯 记者从…」, 「新华社北京3月1日电（记者 张三）…」, 「央视网消息（新闻联播）：…」,
# 「据青溪融媒消息，…」, a 【环球时报】 tag. The story starts after it.
_LEADING_FURNITURE = re.compile(
    r"^(?:【[^】]{1,20}】"
    r"|(?:本[报報]|[\u4e00-\u9fff]{2,8}?(?:网|網|融媒|[日晚早]?[报報]|社|台|臺|站|端))(?:讯|訊)"
    r"|[\u4e00-\u9fff]{2,8}?\d{1,2}月\d{1,2}日\s*(?:电|電|讯|訊)"
    r"|[\u4e00-\u9fff]{2,10}?消息(?:[（(][^（）()]{0,12}[）)])?\s*[:：]|据[\u4e00-\u9fff]{2,10}?消息[，,])?\s*"
    r"(?:[（(【\[][^（）()【】\[\]]{0,8}?(?:记者|記者|通讯员|通訊員|实习生|實習生)[^（）()【】\[\]]{0,30}[）)】\]]\s*)?")


def is_furniture(sentence: str) -> bool:
    """A byline or dateline standing alone."""
    sentence = sentence.strip()
    lead = _LEADING_FURNITURE.match(sentence)
    return bool(_FURNITURE.match(sentence)) or bool(lead and lead.end() == len(sentence) > 0)


def story_start(sentence: str) -> int:
    """Where the story begins in a sentence that may open with a byline or dateline."""
    m = _LEADING_FURNITURE.match(sentence)
    end = m.end() if m else 0
    # Only furniture followed by the story counts: 「本报讯」 alone is furniture, and
    # 「电视台讯号」 never matched a whole prefix that leaves nothing.
    return end if end < len(sentence) else 0


def split_passages(passages: list[Passage], min_chars: int = 6) -> list[Sentence]:
    """The sentences of the passages that can be evidence, bylines and datelines left out."""
    out = []
    for i, p in enumerate(passages):
        for s, e in sentence_spans(p.text):
            s += story_start(p.text[s:e])
            text = p.text[s:e]
            if e - s >= min_chars and not _ATTRIBUTION.match(text) and not is_furniture(text):
                out.append(Sentence(i, s, e, text, normalize(text)))
    return out


def opening(text: str) -> tuple[int, int]:
    """The span of an article's first sentence of story, past its bylines and datelines."""
    for s, e in sentence_spans(text):
        s += story_start(text[s:e])
        if not is_furniture(text[s:e]):
            return s, e
    return 0, 0


# What a question asks for, and the words an answer of that kind holds (both on simplified text).
# Asked in this order: 「几月」 asks for a time, not a number.
_ASKS = (
    ("time", re.compile(r"什么时候|何时|哪天|哪一天|哪年|哪一年|哪个月|几月|几号|几日|几点|什么时间|多久|多长时间|"
                        r"哪个时间|日期")),
    ("number", re.compile(r"多少|几(?!乎)|多大|多长|多高|多远|多重|多深|多宽")),
    # 「作了什么决定」「出台了哪些措施」: what was decided or done, said with a verb that does it.
    # The noun ends the phrase: 「哪些政策咨询窗口」 asks for windows.
    ("decision", re.compile(r"(?:什么|哪些|何种|哪项|哪几项)[\u4e00-\u9fff]{0,4}?"
                            r"(?:决定|决议|决策|措施|举措|政策|规定|部署|安排|办法|改革)(?![\u4e00-\u9fff])|"
                            r"(?:作出|做出|出台|推出|采取|决定)了?(?:什么|哪些)")),
    ("person", re.compile(r"谁|哪位|何人|什么人(?!才)|哪些人(?!才)|哪名|哪一位")),
    ("place", re.compile(r"哪里|哪儿|在哪|何地|何处|什么地方|哪个地方|地点|哪个(?:城市|地区|国家|省|市|区|县|镇)|"
                         r"哪座|哪些地区|哪些国家|哪国")),
)
_CN_NUM = "零〇一二两三四五六七八九十百千万亿"
_KIND_FORMS = {
    "time": re.compile(
        # 「号」 only after a month: 「5号线」「88号」 are a line and an address, not a day.
        rf"\d{{1,4}}\s*年|\d{{1,2}}\s*月(?:\d{{1,2}}\s*[日号])?|\d{{1,2}}\s*日|"
        rf"[{_CN_NUM}]{{1,3}}月(?:[{_CN_NUM}]{{1,3}}[日号])?|"
        rf"[\d{_CN_NUM}半]+\s*个?(?:天|周|星期|月|年|小时|分钟|秒)|"
        r"年底|年初|年内|年中|年末|月底|月初|月中|上半年|下半年|今年|明年|去年|前年|今天|今日|昨天|昨日|明天|前天|"
        r"本周|下周|上周|周[一二三四五六日末]|星期[一二三四五六日天]|凌晨|上午|中午|下午|傍晚|晚上|当晚|当天|当日|"
        r"\d{1,2}[:：]\d{2}|\d{1,2}\s*[时点]|[一二三四五六七八九十]{1,3}[时点]|春节|元旦|国庆|端午|中秋|元宵|"
        r"世纪|年代"),
    "decision": re.compile(r"决定|决议|通过|审议|发布|出台|印发|施行|实施|推出|推行|制定|确定|部署|明确|提出|"
                           r"设立|启动|批准|规定|宣布|要求"),
    "number": re.compile(rf"\d|[{_CN_NUM}]{{2,}}|[两三四五六七八九十百千万亿]\s*(?:[个名人次所条家座项天年岁位辆架艘件种层倍成元米里"
                         r"吨亩户枚台套部支份场起批轮只头张篇处栋克]|多|余)|数[十百千万]|几[十百千万]|半数|多数|少数"),
}
# Who and where: jieba's part-of-speech tags find names; titles and place suffixes back them up.
_PERSON_WORDS = re.compile(r"·|总统|总理|主席|部长|局长|主任|书记|市长|省长|县长|区长|院长|馆长|校长|队长|"
                           r"发言人|负责人|董事长|总经理|经理|专家|教授|博士|先生|女士|男子|女子|嫌疑人|"
                           r"官员|议员|大使|将军|司令")
_PLACE_WORDS = re.compile(r"[\u4e00-\u9fff]{2,6}(?:省|市|县|镇|乡|村|州|岛|港|机场|广场)")


def asks_for(question_norm: str) -> str | None:
    """The kind of answer a question wants: time, number, person, place, decision, or None."""
    for kind, pattern in _ASKS:
        if pattern.search(question_norm):
            return kind
    return None


def _has_form(kind: str, norm: str) -> bool:
    if kind in _KIND_FORMS:
        return bool(_KIND_FORMS[kind].search(norm))
    words = _PERSON_WORDS if kind == "person" else _PLACE_WORDS
    if words.search(norm):
        return True
    import jieba.posseg

    tag = "nr" if kind == "person" else "ns"
    return any(p.flag.startswith(tag) for p in jieba.posseg.cut(norm))


def kind_factor(question_norm: str, sentences: list[Sentence], among: np.ndarray | None = None) -> np.ndarray:
    """1 for sentences that hold what the question asks for (or when it asks for nothing in
    particular), WRONG_KIND for the others; only ``among`` (indices) is examined, the rest keep 1."""
    out = np.ones(len(sentences))
    kind = asks_for(question_norm)
    if kind is None:
        return out
    for i in range(len(sentences)) if among is None else among:
        if not _has_form(kind, sentences[i].norm):
            out[i] = WRONG_KIND
    return out


def topic_factor(query_norm: str, passages: list[Passage], sentences: list[Sentence]) -> np.ndarray:
    """OFF_TOPIC for sentences of a passage that has none of the question's words that most
    passages share, 1 for the others.

    The words most retrieved passages share are what the question is about (「人才」 in
    「会议关于人才政策作了什么决定」); rare words weigh more by IDF, so a passage that shares
    only an incidental one (「会议」 in a report on schools) would otherwise lead the answer.
    """
    q = bigrams(_QUESTION_WORDS.sub(" ", query_norm))
    held = [q & bigrams(normalize(p.title + "\n" + p.text)) for p in passages]
    topic = {g for g in q if sum(g in h for h in held) * 2 > len(passages)}
    if not topic:
        return np.ones(len(sentences))
    return np.array([1.0 if held[s.passage] & topic else OFF_TOPIC for s in sentences])


def _idf(sentences: list[Sentence]) -> dict[str, float]:
    df = Counter(g for s in sentences for g in bigrams(s.norm))
    n = len(sentences) + 1
    return {g: math.log(1 + n / (1 + c)) for g, c in df.items()}


def lexical_scores(query_norm: str, sentences: list[Sentence], context: list[str] | None = None) -> np.ndarray:
    """Share of the query's (IDF-weighted) bigrams that each sentence contains.

    ``context``: normalized text standing for each sentence's surroundings (its
    article's title): what the query shares with it counts for TITLE_SHARE.
    """
    idf = _idf(sentences)
    q = bigrams(_QUESTION_WORDS.sub(" ", query_norm))
    total = sum(idf.get(g, math.log(2 + len(sentences))) for g in q) or 1.0
    own = [q & bigrams(s.norm) for s in sentences]
    scores = np.array([sum(idf.get(g, 0.0) for g in found) / total for found in own])
    if context is None:
        return scores
    around = np.array([sum(idf.get(g, 0.0) for g in found | (q & bigrams(c))) / total
                       for found, c in zip(own, context)])
    return (1 - TITLE_SHARE) * scores + TITLE_SHARE * around


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
        titles = [normalize(p.title) for p in passages]
        lex = lexical_scores(qn, sentences, [titles[s.passage] for s in sentences])
        prior = np.array([1.0 / (1.0 + 0.5 * s.passage) for s in sentences])
        scores = 0.6 * lex + 0.15 * prior
        # Only the lexical front-runners are worth the slower checks (dense, part of speech):
        # the rest keep their lexical score.
        if self.embedder is not None and sentences:
            # Embedding sentences is the slow part on a CPU.
            top = np.argsort(-scores)[:DENSE_CANDIDATES]
            q = self.embedder.embed_query(qn)
            dense = self.embedder.embed_passages([sentences[i].norm for i in top]) @ q
            # e5 cosines sit in a narrow band: only their spread is informative.
            spread = (dense - dense.mean()) / (dense.std() + 1e-6)
            scores = scores.copy()
            scores[top] += 0.08 * spread
        scores = scores * kind_factor(qn, sentences, np.argsort(-scores)[:3 * DENSE_CANDIDATES]) \
            * topic_factor(qn, passages, sentences)
        for s, v in zip(sentences, scores):
            s.score = float(v)
        return scores

    def select(self, query: str, passages: list[Passage], budget: int, max_items: int) -> list[Sentence]:
        """The sentences of the answer, the best one (with the sentences it needs) first."""
        passages = passages[: self.max_passages]
        sentences = split_passages(passages)
        if not sentences:
            return []
        scores = self.score(query, passages, sentences)
        chosen = _mmr(scores, _overlap_matrix(sentences), [len(s.text) for s in sentences], budget, max_items,
                      floor=ANSWER_FLOOR)
        best = chosen[0]  # MMR's first pick is the best score
        around = _context(sentences, passages, best)
        for extra in around:
            # Overlapping chunks hold some sentences twice: one copy is enough.
            copied = any(sentences[i].text == sentences[extra].text for i in chosen)
            if not copied and sum(len(sentences[i].text) for i in chosen) + len(sentences[extra].text) <= budget:
                chosen.append(extra)
        picked = {i: sentences[i] for i in chosen}
        if len(picked[best].text) > budget:
            picked[best] = _trim(picked[best], normalize(query), budget)
        # The best sentence opens the answer, with the sentences it needs around it in
        # the order they were written; then the rest, article by article (best first),
        # each article's sentences as written.
        lead = [best] + [i for i in around if i in picked]
        rest = [i for i in chosen if i not in lead]
        strength: dict[str, float] = {}
        for i in rest:
            a = _place(sentences[i], passages)[0]
            strength[a] = max(strength.get(a, -1e9), scores[i])
        lead.sort(key=lambda i: _place(sentences[i], passages)[1])
        rest.sort(key=lambda i: (-strength[_place(sentences[i], passages)[0]], _place(sentences[i], passages)))
        return [picked[i] for i in lead + rest]

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

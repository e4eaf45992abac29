"""Dates in Chinese text: the period a question asks about, and the day a relative
word inside an article (「昨天下午」) points to.

Both work on normalized (simplified) text and resolve against an anchor date:
today or ``--as-of`` for questions, the article's own date for its sentences.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re

# What every reader (CLI, prompts, briefings) shows for an article without a date.
UNDATED = "日期不详"

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}


def cn_number(s: str) -> int:
    """「12」「十二」「二十一」「两」 -> int."""
    if s.isdigit():
        return int(s)
    if "十" in s:
        tens, _, ones = s.partition("十")
        return (_CN_DIGITS.get(tens, 1) if tens else 1) * 10 + (_CN_DIGITS.get(ones, 0) if ones else 0)
    return _CN_DIGITS[s]


_NUM = r"(\d{1,4}|[一二两三四五六七八九十〇零]{1,3})"


def _month_range(y: int, m: int) -> tuple[dt.date, dt.date]:
    return dt.date(y, m, 1), dt.date(y, m, calendar.monthrange(y, m)[1])


def _past(anchor: dt.date, y: int, m: int, d: int | None = None) -> int:
    """A month (or day) named without a year means its latest occurrence up to the anchor."""
    probe = dt.date(y, m, d or 1)
    return y - 1 if probe > anchor else y


def _shift_month(y: int, m: int, delta: int) -> tuple[int, int]:
    i = y * 12 + (m - 1) + delta
    return i // 12, i % 12 + 1


# (pattern, resolver(match, anchor) -> (since, until)); the first, most specific match wins.
def _day(y, m, d):
    day = dt.date(y, m, d)
    return day, day


_RULES = [
    (re.compile(r"(\d{4})\s*[年\-/.]\s*(\d{1,2})\s*[月\-/.]\s*(\d{1,2})\s*[日号]?"),
     lambda m, a: _day(int(m[1]), int(m[2]), int(m[3]))),
    (re.compile(rf"(\d{{4}})\s*年\s*{_NUM}\s*月份?"), lambda m, a: _month_range(int(m[1]), cn_number(m[2]))),
    (re.compile(rf"(?<![\d年]){_NUM}\s*月\s*{_NUM}\s*[日号]"),
     lambda m, a: _day(_past(a, a.year, cn_number(m[1]), cn_number(m[2])), cn_number(m[1]), cn_number(m[2]))),
    (re.compile(r"(\d{4})\s*年(?!\s*\d{1,2}\s*月)"), lambda m, a: (dt.date(int(m[1]), 1, 1), dt.date(int(m[1]), 12, 31))),
    (re.compile(rf"(?<![\d年]){_NUM}\s*月份?(?!\s*\d)"),
     lambda m, a: _month_range(_past(a, a.year, cn_number(m[1])), cn_number(m[1]))),
    (re.compile(rf"(?:最近|近|过去|前)\s*{_NUM}\s*(天|日|周|星期|个月|月|年)"), lambda m, a: _recent(m, a)),
    (re.compile(r"(?:最近|近来|近期)"), lambda m, a: (a - dt.timedelta(days=30), a)),
    (re.compile(r"今天|今日"), lambda m, a: (a, a)),
    (re.compile(r"昨天|昨日"), lambda m, a: _day(*(a - dt.timedelta(days=1)).timetuple()[:3])),
    (re.compile(r"前天"), lambda m, a: _day(*(a - dt.timedelta(days=2)).timetuple()[:3])),
    (re.compile(r"本周|这周|本星期|这个星期"), lambda m, a: (a - dt.timedelta(days=a.weekday()), a)),
    (re.compile(r"上周|上星期|上个星期"),
     lambda m, a: (a - dt.timedelta(days=a.weekday() + 7), a - dt.timedelta(days=a.weekday() + 1))),
    (re.compile(r"本月|这个月|当月"), lambda m, a: (dt.date(a.year, a.month, 1), a)),
    (re.compile(r"上个月|上月"), lambda m, a: _month_range(*_shift_month(a.year, a.month, -1))),
    (re.compile(r"今年|本年"), lambda m, a: (dt.date(a.year, 1, 1), a)),
    (re.compile(r"去年"), lambda m, a: (dt.date(a.year - 1, 1, 1), dt.date(a.year - 1, 12, 31))),
    (re.compile(r"前年"), lambda m, a: (dt.date(a.year - 2, 1, 1), dt.date(a.year - 2, 12, 31))),
]


def _recent(m: re.Match, a: dt.date) -> tuple[dt.date, dt.date]:
    n, unit = cn_number(m[1]), m[2]
    days = {"天": 1, "日": 1, "周": 7, "星期": 7}.get(unit)
    if days:
        return a - dt.timedelta(days=n * days - 1), a
    if unit == "年":
        return dt.date(a.year - n, a.month, min(a.day, 28)), a
    y, mo = _shift_month(a.year, a.month, -n)
    return dt.date(y, mo, min(a.day, 28)), a


def question_period(normalized_question: str, as_of: dt.date | None = None) -> tuple[str, str, str] | None:
    """(since, until, the words that said so) for the first period the question names, else None."""
    anchor = as_of or dt.date.today()
    for pattern, resolve in _RULES:
        m = pattern.search(normalized_question)
        if m:
            try:
                since, until = resolve(m, anchor)
            except (ValueError, KeyError):
                continue
            return since.isoformat(), until.isoformat(), m.group(0)
    return None


# Relative words inside an article, resolved against its publication date.
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
_IN_ARTICLE = re.compile(
    rf"(?P<md>(?<![\d年]){_NUM}月{_NUM}[日号])|(?P<rel>今天|今日|昨天|昨日|前天|明天|明日)|"
    r"(?P<wk>(?:本|这|上|下)(?:周|星期)(?P<wd>[一二三四五六日天]))")


def event_date(normalized_sentence: str, article_date: str | None) -> str | None:
    """The day a sentence's own relative date points to (「昨天下午」 in a 03-12 article: 03-11)."""
    if not article_date:
        return None
    a = dt.date.fromisoformat(article_date)
    m = _IN_ARTICLE.search(normalized_sentence)
    if not m:
        return None
    try:
        if m["md"]:
            mo, d = cn_number(m.group(2)), cn_number(m.group(3))
            return dt.date(_past(a + dt.timedelta(days=31), a.year, mo, d), mo, d).isoformat()
        if m["rel"]:
            offset = {"今天": 0, "今日": 0, "昨天": -1, "昨日": -1, "前天": -2, "明天": 1, "明日": 1}[m["rel"]]
            return (a + dt.timedelta(days=offset)).isoformat()
        week = {"本": 0, "这": 0, "上": -1, "下": 1}[m["wk"][0]]
        monday = a - dt.timedelta(days=a.weekday()) + dt.timedelta(weeks=week)
        return (monday + dt.timedelta(days=_WEEKDAYS[m["wd"]])).isoformat()
    except (ValueError, KeyError):
        return None


def check_period(since: str | None, until: str | None) -> None:
    """A ValueError when a period (ISO dates, either may be open) ends before it begins:
    otherwise it would select nothing and say nothing about why."""
    if since and until and since > until:
        raise ValueError(f"since ({since}) is after until ({until})")

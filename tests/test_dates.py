import datetime as dt

import pytest

from newsrag.dates import event_date, question_period
from newsrag.text import normalize

AS_OF = dt.date(2024, 4, 10)


@pytest.mark.parametrize("question, since, until", [
    ("2024年3月有哪些人才政策", "2024-03-01", "2024-03-31"),
    ("上個月的會議決定了什麼", "2024-03-01", "2024-03-31"),
    ("去年开了几次会", "2023-01-01", "2023-12-31"),
    ("3月5日发生了什么", "2024-03-05", "2024-03-05"),
    ("5月的灯会", "2023-05-01", "2023-05-31"),  # May has not come yet in 2024: last year's
    ("最近7天的新闻", "2024-04-04", "2024-04-10"),
    ("2023年的垃圾分类", "2023-01-01", "2023-12-31"),
    ("2024年3月12日的发布会", "2024-03-12", "2024-03-12"),
    ("今年有哪些新学校", "2024-01-01", "2024-04-10"),
])
def test_question_period(question, since, until):
    found = question_period(normalize(question), AS_OF)
    assert found is not None and found[:2] == (since, until)


def test_no_period_in_plain_question():
    assert question_period(normalize("会议关于人才政策做了什么决定"), AS_OF) is None


@pytest.mark.parametrize("sentence, article_date, expected", [
    ("昨天下午，區委召開常委會會議", "2024-03-12", "2024-03-11"),
    ("前天，地铁试运行", "2024-06-18", "2024-06-16"),
    ("本週三啟動首輪選房", "2024-06-24", "2024-06-26"),
    ("3月11日下午召开发布会", "2024-03-13", "2024-03-11"),
    ("12月30日开始", "2024-01-02", "2023-12-30"),
    ("昨天下午召开会议", None, None),
    ("会议决定设立基金", "2024-03-12", None),
])
def test_event_date_in_article(sentence, article_date, expected):
    assert event_date(normalize(sentence), article_date) == expected

"""The web UI in a real browser: headless Chromium drives the page served by `python app.py`."""
import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import requests

from newsrag import Archive
from newsrag.articles import SUFFIXES
from newsrag.settings import Settings
from newsrag.ui import PALETTE, READABLE, answer_html, bars, error_box, generators, period_chart, unreadable

from conftest import REPO

SEED = REPO.parent / "shared" / "data" / "seed" / "000_a62ff834cd6f190a.txt"
SEED_TITLE = "區委常委會會議召開"
OUT = REPO / "benchmarks" / "out"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_app(index, *flags, cwd=REPO):
    """`python app.py --index INDEX FLAGS` (no --index when INDEX is None) in ``cwd`` on a free
    loopback port; yields its URL."""
    port = free_port()
    path = [str(REPO / "src"), *[os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env = {k: v for k, v in os.environ.items() if k != "NEWSRAG_INDEX"}
    env.update(GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(path))
    where = ["--index", str(index)] if index is not None else []
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), *where, "--port", str(port), *flags],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.3)
        if proc.poll() is not None:
            pytest.fail("app.py exited: " + proc.stdout.read())
    else:
        proc.kill()
        pytest.fail("app.py did not start in 90 s")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory):
    """An index holding the seed report."""
    from conftest import CRAWLED

    index = tmp_path_factory.mktemp("ui") / "index"
    source = SEED
    if not SEED.exists():  # a checkout without ../shared: the fictional crawled report stands in
        source = index.parent / "crawled.txt"
        source.write_text(CRAWLED, encoding="utf-8")
    with Archive.open(index) as a:
        assert a.ingest([source]).added == 1
    return index


@pytest.fixture(scope="module")
def server(seed_index):
    """`python app.py` over the seed index."""
    with start_app(seed_index) as url:
        yield url


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1100", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts)


@contextlib.contextmanager
def page(url, tab: str | None = None):
    """A browser on the page at ``url``, loaded (and on ``tab``); closed afterwards."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser()
    try:
        d.get(url + "/")
        WebDriverWait(d, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#question textarea"))
        if tab:
            d.find_element(By.XPATH, f"//button[@role='tab'][contains(., '{tab}')]").click()
        yield d
    finally:
        d.quit()


def test_ask_in_the_browser_shows_answer_and_source_card(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with page(server) as d:
        box = d.find_element(By.CSS_SELECTOR, "#question textarea")
        box.send_keys("會議關於人才政策作了什麼決定？")
        d.find_element(By.CSS_SELECTOR, "#ask").click()
        WebDriverWait(d, 90).until(lambda d: "[1]" in d.find_element(By.ID, "answer").text
                                   and d.find_elements(By.CSS_SELECTOR, "#sources .nr-card"))
        answer = d.find_element(By.ID, "answer").text
        cards = d.find_elements(By.CSS_SELECTOR, "#sources .nr-card")
        assert "人才引進" in answer
        assert any(SEED_TITLE in c.text for c in cards)
        assert d.find_elements(By.CSS_SELECTOR, "#sources mark")  # the quoted span is highlighted
        # each marker links to its card
        link = d.find_element(By.CSS_SELECTOR, "#answer a[href='#cite-1']")
        assert link and d.find_element(By.ID, "cite-1")
        OUT.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(OUT / "ui-ask.png"))


def test_english_toggle_redraws_what_is_shown_and_errors_in_the_page(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with page(server) as d:
        box = d.find_element(By.CSS_SELECTOR, "#question textarea")
        assert "资料库" in d.find_element(By.ID, "index-info").text  # which index is open
        box.send_keys("會議關於人才政策作了什麼決定？")
        d.find_element(By.CSS_SELECTOR, "#ask").click()
        WebDriverWait(d, 90).until(lambda d: "日期不详" in d.find_element(By.ID, "sources").text)
        d.find_element(By.XPATH, "//label[contains(., 'English')]").click()
        WebDriverWait(d, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#ask").text == "Ask")
        # the answer already shown is drawn again in English: its cards too
        WebDriverWait(d, 60).until(lambda d: "undated" in d.find_element(By.ID, "sources").text)
        assert "日期不详" not in d.find_element(By.ID, "sources").text
        assert d.find_element(By.ID, "index-info").text.startswith("Index")
        # an invalid date is explained in the page, in both languages, with no traceback
        d.find_element(By.CSS_SELECTOR, "#ask-since textarea, #ask-since input").send_keys("2024-02-30")
        d.find_element(By.CSS_SELECTOR, "#ask").click()
        WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#answer .nr-error"))
        text = d.find_element(By.ID, "answer").text
        assert "日期格式不对" in text and "not valid" in text and "Traceback" not in text


def test_error_box_is_plain_language():
    box = error_box(ValueError("invalid date '2024-02-30' (no such day)"))
    assert "日期格式不对" in box and "YYYY-MM-DD" in box and "Traceback" not in box
    other = error_box(RuntimeError("disk full\nTraceback (most recent call last): ..."))
    assert "disk full" in other and "Traceback" not in other


def test_answer_html_links_markers(sample_index):
    with Archive.open(sample_index) as a:
        ans = a.ask("青溪区对A类人才最高资助多少？")
    page = answer_html(ans)
    assert 'href="#cite-1"' in page and "<script" not in page


def test_upload_in_the_browser_and_upload_an_edited_file_again(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def upload(d, name, text):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        d.find_element(By.CSS_SELECTOR, "#upload input[type='file']").send_keys(str(path))
        WebDriverWait(d, 60).until(lambda d: path.stem in d.find_element(By.ID, "upload").text)

    def ingest(d, expect):
        d.find_element(By.ID, "ingest").click()
        WebDriverWait(d, 90).until(lambda d: expect in d.find_element(By.ID, "ingest-msg").text)
        d.find_element(By.CSS_SELECTOR, "#upload button[aria-label='Clear']").click()
        return d.find_element(By.ID, "ingest-results").text

    with page(server, "资料库") as d:
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "ingest").is_displayed())
        assert "拖放文件到此处" in d.find_element(By.ID, "upload").text  # Gradio's own words too
        before = requests.get(server + "/api/stats", timeout=10).json()["articles"]
        upload(d, "notice.txt", "青溪图书馆延长开放\n青溪图书馆自8月1日起每晚开放至21时。")
        results = ingest(d, "新增 1 篇")
        assert "upload:notice.txt" in results and "新增" in results and "status" not in results
        upload(d, "notice.txt", "青溪图书馆延长开放\n青溪图书馆自8月1日起每晚开放至22时，周一闭馆。")
        ingest(d, "更新 1 篇")
        assert requests.get(server + "/api/stats", timeout=10).json()["articles"] == before + 1
        # a file no loader reads is named at once, and again in the results
        upload(d, "scan.xyz", "not an article")
        WebDriverWait(d, 30).until(lambda d: "不能读取 scan.xyz" in d.find_element(By.ID, "ingest-msg").text)
        assert "Cannot read scan.xyz" in d.find_element(By.ID, "ingest-msg").text
        assert "unsupported file type '.xyz'" in ingest(d, "失败 1 项")
        # deleting an id that is not there is one plain sentence, not a Python repr
        d.find_element(By.CSS_SELECTOR, "#delete-id textarea, #delete-id input").send_keys("no-such-id")
        d.find_element(By.ID, "delete").click()
        WebDriverWait(d, 30).until(lambda d: "没有 ID 为 no-such-id 的文章" in d.find_element(By.ID, "ingest-msg").text)
        assert "'" not in d.find_element(By.ID, "ingest-msg").text


def test_with_a_token_the_browser_signs_in_once_and_then_uses_the_page(seed_index):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with start_app(seed_index, "--token", "s3cr3t") as url:
        d = browser()
        try:
            d.get(url + "/")
            box = WebDriverWait(d, 30).until(lambda d: d.find_element(By.NAME, "token"))
            assert d.current_url == url + "/login"
            box.send_keys("wrong")
            box.submit()
            WebDriverWait(d, 30).until(lambda d: "Wrong credentials" in d.page_source)
            box = d.find_element(By.NAME, "token")
            box.send_keys("s3cr3t")
            box.submit()
            box = WebDriverWait(d, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#question textarea"))
            box.send_keys("會議關於人才政策作了什麼決定？")
            d.find_element(By.CSS_SELECTOR, "#ask").click()  # the page's own calls carry the session cookie
            WebDriverWait(d, 90).until(lambda d: "[1]" in d.find_element(By.ID, "answer").text)
            assert "s3cr3t" not in str(d.get_cookies())
        finally:
            d.quit()


@pytest.fixture(scope="module")
def sample_server(sample_index, tmp_path_factory):
    """`python app.py` over a copy of the sample archive (dates over six months, both scripts)."""
    index = tmp_path_factory.mktemp("ui-sample") / "index"
    shutil.copytree(sample_index, index)
    with start_app(index) as url:
        yield url


def bar_colours(d, chart_id: str) -> set[str]:
    """The fill colours of the bars Vega drew in the chart ``chart_id``."""
    return {c.lower() for c in d.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' .mark-rect path')].map(p => p.getAttribute('fill'))",
        f"#{chart_id}") if c}


def legend_keys(d, legend_id: str) -> list[tuple[str, str]]:
    """(name, colour) of each entry of a legend, each checked to be on screen and whole."""
    from selenium.webdriver.common.by import By

    width = d.execute_script("return document.documentElement.clientWidth")
    keys = []
    for key in d.find_elements(By.CSS_SELECTOR, f"#{legend_id} .nr-key"):
        rect = key.rect
        assert key.is_displayed() and key.text and rect["x"] >= 0 and rect["x"] + rect["width"] <= width
        colour = d.execute_script("const c = getComputedStyle(arguments[0].querySelector('i')).backgroundColor;"
                                  "const [r, g, b] = c.match(/\\d+/g).map(Number);"
                                  "return '#' + [r, g, b].map(x => x.toString(16).padStart(2, '0')).join('')", key)
        keys.append((key.text, colour))
    return keys


def one_line(d, element) -> bool:
    """Whether the text of ``element`` is laid out on one line (not broken inside a word)."""
    return d.execute_script("const r = document.createRange(); r.selectNodeContents(arguments[0]);"
                            "return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size === 1", element)


def make_brief(d, topic, since, until):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for elem, value in (("topic", topic), ("brief-since", since), ("brief-until", until)):
        box = d.find_element(By.CSS_SELECTOR, f"#{elem} textarea, #{elem} input")
        box.clear()
        box.send_keys(value)
    def shown(d):
        return d.find_element(By.ID, "brief").text + d.find_element(By.ID, "brief-error").text

    old = shown(d)
    d.find_element(By.ID, "make-brief").click()
    # done: something new is shown and nothing is pending (pending outputs show only a progress bar)
    WebDriverWait(d, 120).until(lambda d: shown(d) not in ("", old) and not d.find_elements(
        By.CSS_SELECTOR, ".pending, .progress-text"))
    time.sleep(1.5)  # Vega draws the chart after the value arrives


def test_briefing_chart_has_a_whole_legend_and_a_title_that_matches_its_bins(sample_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with page(sample_server, "简报") as d:
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "make-brief").is_displayed())
        # extractive is the only generator that can work on this server: there is nothing to choose
        assert not [e for e in d.find_elements(By.ID, "generator") if e.is_displayed()]

        make_brief(d, "", "2024-01-01", "2024-06-30")  # six months: a bar per week
        chart = d.find_element(By.ID, "brief-chart")
        assert "每周文章数" in chart.text and "周（周一）" in chart.text
        ticks = [t.text for t in chart.find_elements(By.CSS_SELECTOR, ".role-axis-label text") if "-" in t.text]
        assert ticks and all(dt.date.fromisoformat(t).weekday() == 0 for t in ticks)
        keys = legend_keys(d, "brief-chart-legend")
        brief = d.find_element(By.ID, "brief").text
        assert len(keys) >= 2 and all(name.split(". ", 1)[1] in brief for name, _ in keys)  # the themes, whole
        assert len({c for _, c in keys}) == len(keys)
        assert {c for _, c in keys} == bar_colours(d, "brief-chart")  # each colour named, each named colour drawn

        make_brief(d, "", "2024-03-01", "2024-03-31")  # one month: a bar per day
        assert "每日文章数" in d.find_element(By.ID, "brief-chart").text

        make_brief(d, "火星探测器着陆", "2024-01-01", "2024-06-30")  # nothing matches: no chart, no old legend
        assert not [e for e in d.find_elements(By.ID, "brief-chart") if e.is_displayed()]
        assert not d.find_elements(By.CSS_SELECTOR, "#brief-chart-legend .nr-key")

        make_brief(d, "", "2024-06-01", "2024-01-01")
        error = d.find_element(By.ID, "brief-error").text
        assert "起始日期晚于结束日期" in error and "start date is after the end date" in error
        assert "NaN" not in d.page_source


def test_archive_tab_speaks_chinese_and_merges_sources_across_scripts(sample_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with page(sample_server, "资料库") as d:
        WebDriverWait(d, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#coverage-legend .nr-key"))
        time.sleep(1.5)
        rows = d.find_elements(By.CSS_SELECTOR, "#stats tr")
        names = [r.find_element(By.TAG_NAME, "th") for r in rows]
        assert all(n.text for n in names)  # no blank header row
        assert [n.text for n in names[:3]] == ["资料库位置", "文章", "转载（近似重复）"]
        assert all(one_line(d, n) for n in names)  # no name broken across lines
        stats = d.find_element(By.ID, "stats").text
        assert "临江晚报 (6)" in stats and "臨江晚報" not in stats
        keys = [name for name, _ in legend_keys(d, "coverage-legend")]
        assert "临江晚报" in keys and "臨江晚報" not in keys and len(keys) == len(set(keys))
        assert "每月文章数（按来源）" in d.find_element(By.ID, "coverage").text
        headers = d.find_element(By.ID, "articles").text
        assert "标题" in headers and "title" not in headers
        # the source filter offers each source once, in its usual spelling
        d.find_element(By.XPATH, "//button[@role='tab'][contains(., '提问')]").click()
        d.find_element(By.CSS_SELECTOR, "#ask-source input").click()
        options = WebDriverWait(d, 30).until(lambda d: [o.text for o in d.find_elements(By.CSS_SELECTOR, "[role='option']")])
        assert "临江晚报" in options and "臨江晚報" not in options


def test_a_first_start_serves_the_sample_read_only_and_says_so(sample_index, tmp_path):
    """`python app.py` with no index of one's own: the bundled sample, which nothing goes into."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shutil.copytree(sample_index, tmp_path / "indexes" / "sample")  # as an earlier first start left it
    with start_app(None, cwd=tmp_path) as url:
        assert requests.get(url + "/api/stats", timeout=10).json()["articles"] == 21
        r = requests.post(url + "/api/articles", json={"records": [{"text": "青溪图书馆每晚开放至21时。"}]}, timeout=30)
        assert r.status_code >= 400 and "read-only" in r.json()["detail"]
        with page(url, "资料库") as d:
            info = d.find_element(By.ID, "index-info").text
            assert "indexes/sample" in info and "只读" in info and "--index indexes/news" in info
            WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "refresh").is_displayed())
            assert not [e for e in d.find_elements(By.CSS_SELECTOR, "#upload, #ingest, #delete") if e.is_displayed()]
    assert not (tmp_path / "indexes" / "news").exists()


def test_period_chart_bins_by_day_or_week():
    def brief(*dates):
        return SimpleNamespace(themes=[SimpleNamespace(headline="地铁", timeline=[SimpleNamespace(date=x) for x in dates])])

    df, unit = period_chart(brief("2024-03-05", "2024-03-05", "2024-03-20", None))
    assert unit == "day" and df.to_dict("records") == [{"date": "2024-03-05", "theme": "1. 地铁", "articles": 2},
                                                         {"date": "2024-03-20", "theme": "1. 地铁", "articles": 1}]
    df, unit = period_chart(brief("2024-01-03", "2024-01-05", "2024-06-30"))
    assert unit == "week" and list(df["date"]) == ["2024-01-01", "2024-06-24"] and list(df["articles"]) == [2, 1]
    assert period_chart(brief())[0].empty


def test_bars_give_each_series_its_own_colour_and_fold_the_rest():
    import pandas as pd

    df = pd.DataFrame({"month": ["2024-01"] * 12, "source": [f"报{i:02d}" for i in range(12)], "articles": range(1, 13)})
    out, colours = bars(df, "month", "source", "其他")
    assert len(colours) == len(PALETTE) and len(set(colours.values())) == len(PALETTE)
    assert list(colours)[:2] == ["报11", "报10"] and list(colours)[-1] == "其他"
    assert out["articles"].sum() == df["articles"].sum() and set(out["source"]) == set(colours)


def test_uploads_accept_what_the_loaders_read():
    assert set(READABLE) == SUFFIXES | {".zip"}  # a format the loaders learn is offered without editing ui.py
    assert unreadable(["a.txt", "B.JSONL", "c.zip", "d.pdf.exe", "e"]) == ["d.pdf.exe", "e"]


def test_briefing_offers_only_generators_that_can_work():
    assert generators(Settings(generator="extractive")) == [("extractive", "extractive")]
    offered = generators(Settings(generator="openai", model="qwen2.5", base_url="http://127.0.0.1:8080/v1"))
    assert offered == [("openai · qwen2.5 @ http://127.0.0.1:8080/v1", "openai"), ("extractive", "extractive")]


def test_error_box_shows_a_missing_key_as_a_sentence():
    box = error_box(KeyError("no article with id x"))
    assert "没有这个 ID 的文章" in box and "&#x27;" not in box and "'" not in box

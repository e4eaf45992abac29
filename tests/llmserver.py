"""A real ``llama_cpp.server`` in a subprocess on a free loopback port (tests/test_llamacpp.py, benchmarks/llm.py)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Iterator


@contextlib.contextmanager
def llama_server(gguf: str, n_ctx: int, chat_format: str = "gemma", start_timeout: float = 180) -> Iterator[str]:
    """Serve ``gguf`` with llama-cpp-python's OpenAI-compatible server; yields its base URL (…/v1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--chat_format", chat_format,
                             "--n_ctx", str(n_ctx), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + start_timeout
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not start (exit status {proc.poll()})") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

"""Talking to model servers (OpenAI-compatible generation and embedding endpoints): JSON over HTTP."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from .text import one_line


def json_object(text: str) -> dict | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def message(error) -> str:
    """The human part of a server's error: {"error": {"message": …}}, {"detail": …}, or the text itself."""
    if isinstance(error, str):
        error = json_object(error) or error
    if isinstance(error, dict):
        inner = next((error[k] for k in ("error", "message", "detail") if error.get(k)), None)
        return message(inner) if inner is not None else one_line(json.dumps(error, ensure_ascii=False), 300)
    return one_line(str(error), 300)


def request(url: str, body: dict | None, api_key: str | None, timeout: float):
    """An open response to a JSON POST (GET without a body); urllib's errors pass through."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
    return urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=timeout)


def http_error_detail(e: urllib.error.HTTPError) -> str:
    try:
        return message(e.read(4000).decode("utf-8", "replace")) or str(e.reason)
    except OSError:
        return str(e.reason)

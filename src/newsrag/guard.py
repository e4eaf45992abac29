"""The first thing every request meets: its Host, cross-site writes, credentials, its size.

A plain ASGI middleware rather than FastAPI dependencies, so that it covers every
route the server has: the API, its docs, and the Gradio UI mounted at "/", whose
routes FastAPI's dependencies never see. Refusals are one-line JSON ``{"detail": …}``.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .articles import MAX_JSON_BYTES
from .auth import OPEN_PATHS, Policy
from .text import one_line
from .uploads import MAX_UPLOAD_BYTES

MAX_BODY_BYTES = 1024 ** 2  # a question, a search, one of the UI's calls
MULTIPART_SLACK = 1024 ** 2  # the multipart framing around an upload's files
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def body_limit(path: str, content_type: str) -> int:
    """The most bytes a request body may have: an upload's, a JSON batch of records, else small."""
    if content_type.lower().startswith("multipart/form-data"):
        return MAX_UPLOAD_BYTES + MULTIPART_SLACK
    return MAX_JSON_BYTES if path == "/api/articles" else MAX_BODY_BYTES


def cross_site(conn: HTTPConnection) -> str | None:
    """Why this request looks sent by another site's page, else None.

    A browser names the page a POST (or a WebSocket) comes from in ``Origin`` (or at least
    ``Referer``); a page elsewhere may not change this server. A script or curl names no
    page and is let through: credentials, not this check, are what keep it out.
    """
    if conn.scope["type"] == "http" and conn.scope["method"] not in UNSAFE_METHODS:
        return None
    page = conn.headers.get("origin") or conn.headers.get("referer")
    if not page:
        return None
    host = conn.headers.get("host", "")
    if page != "null" and urlsplit(page).netloc.lower() == host.lower():
        return None
    return one_line(f"cross-site request refused: the page at {page} is not on this server ({host})", 300)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body too large (over {limit / 2**20:g} MB for this request)")


def _bounded(receive: Receive, limit: int) -> Receive:
    """``receive`` that stops a body (of any framing, chunked too) once it passes ``limit``."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)  # the routes' handlers make it a 413 {"detail": …}
        return message

    return bounded


class Guard:
    """Host, cross-site, credentials and size checks before any route runs.

    ``hosts``: the Host names accepted (None: any). A server on a loopback address
    accepts only loopback names, so that a page whose name an attacker points at
    127.0.0.1 (DNS rebinding) is not "this server".
    """

    def __init__(self, app: ASGIApp, policy: Policy, hosts: frozenset[str] | None = None):
        self.app, self.policy, self.hosts = app, policy, hosts

    def refusal(self, conn: HTTPConnection, limit: int) -> Response | None:
        """The response that refuses this request, or None to let it through."""
        if self.hosts is not None and urlsplit("//" + conn.headers.get("host", "")).hostname not in self.hosts:
            return JSONResponse({"detail": "unknown Host header (this server answers to "
                                           + ", ".join(sorted(self.hosts)) + ")"}, 400)
        reason = cross_site(conn)
        if reason:
            return JSONResponse({"detail": reason}, 403)
        if conn.url.path not in OPEN_PATHS and not self.policy.allows(conn.headers, conn.cookies):
            if conn.scope.get("method") in ("GET", "HEAD") and "text/html" in conn.headers.get("accept", ""):
                return RedirectResponse("/login", 303)  # a browser: to the sign-in form
            return JSONResponse({"detail": self.policy.refusal(conn.headers)}, 401,
                                headers={"WWW-Authenticate": self.policy.challenge()})
        declared = conn.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before a byte of it is read
            return JSONResponse({"detail": BodyTooLarge(limit).detail}, 413)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        limit = body_limit(conn.url.path, conn.headers.get("content-type", ""))
        response = self.refusal(conn, limit)
        if response is not None and scope["type"] == "websocket":
            await receive()  # the handshake; closing before accepting refuses it with a 403
            await send({"type": "websocket.close", "code": 1008})
        elif response is not None:
            await response(scope, receive, send)
        elif scope["type"] == "http":
            await self._bounded_call(scope, _bounded(receive, limit), send)
        else:
            await self.app(scope, receive, send)

    async def _bounded_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except BodyTooLarge as e:  # a route that let it escape; the usual path is its handler's 413
            if started:
                raise
            await JSONResponse({"detail": e.detail}, 413)(scope, receive, send)

"""Who may use the server: one policy for every route, the HTTP API and the web UI alike.

With ``--token`` a script sends ``Authorization: Bearer <token>``; with ``--auth
user:password`` it may send HTTP Basic instead. A browser signs in once on /login
with the same credentials and then carries a session cookie (HttpOnly,
SameSite=Strict). The cookie holds an HMAC of the credential under a key made at
start-up, never the credential itself: it does not reveal the token, and a
restart (or a new token) signs every browser out.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import Headers

COOKIE = "newsrag_session"
# Open without credentials: the liveness probe (it tells only the article count), the
# sign-in page itself, and the API's description (it documents the software, not the archive).
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout", "/docs", "/docs/oauth2-redirect", "/openapi.json"})


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class Policy:
    """The server's credentials (none, a token, a user and password, or both)."""

    def __init__(self, token: str | None = None, basic: tuple[str, str] | None = None):
        self.token = token or None
        self.basic = tuple(basic) if basic else None
        self._key = secrets.token_bytes(32)
        self._sessions = [self._session(c) for c in self._credentials()]

    @property
    def required(self) -> bool:
        return bool(self.token or self.basic)

    def _credentials(self) -> list[str]:
        return ([f"token:{self.token}"] if self.token else []) + (
            [f"basic:{self.basic[0]}:{self.basic[1]}"] if self.basic else [])

    def _session(self, credential: str) -> str:
        return hmac.new(self._key, credential.encode("utf-8"), hashlib.sha256).hexdigest()

    def sign_in(self, token: str = "", user: str = "", password: str = "") -> str | None:
        """The session cookie's value for the sign-in form's fields, or None when they are wrong."""
        if self.token and token and _same(token, self.token):
            return self._sessions[0]
        if self.basic and user and _same(user, self.basic[0]) & _same(password, self.basic[1]):
            return self._sessions[-1]
        return None

    def allows(self, headers: Headers, cookies: dict[str, str]) -> bool:
        """Whether a request with these headers and cookies carries valid credentials."""
        if not self.required:
            return True
        scheme, _, value = headers.get("authorization", "").partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self.token and _same(value, self.token):
            return True
        if scheme == "basic" and self.basic:
            try:
                user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return bool(sep) and self.sign_in(user=user, password=password) is not None
        session = cookies.get(COOKIE, "")
        return any(_same(session, s) for s in self._sessions)

    def challenge(self) -> str:
        """The WWW-Authenticate header of a 401."""
        return ", ".join(c for c in ("Bearer" if self.token else "",
                                      'Basic realm="newsrag"' if self.basic else "") if c)

    def refusal(self, headers: Headers) -> str:
        """The one-line reason a request without valid credentials gets."""
        if headers.get("authorization"):
            return "wrong credentials"
        ways = [w for w in ("Bearer <token>" if self.token else "", "Basic <user:password>" if self.basic else "")
                if w]
        return "credentials required: send Authorization: " + " or ".join(ways) + " (browsers: sign in at /login)"

    def login_page(self, error: str = "") -> str:
        """The sign-in form: the token, or user and password, whichever the server was given."""
        fields = []
        if self.token:
            fields.append('<label>访问令牌 Token<input name="token" type="password" autocomplete="current-password"'
                          ' autofocus></label>')
        if self.basic:
            fields.append('<label>用户名 User<input name="user" autocomplete="username"></label>'
                          '<label>密码 Password<input name="password" type="password"'
                          ' autocomplete="current-password"></label>')
        note = f'<p class="err">{html.escape(error)}</p>' if error else ""
        return f"""<!doctype html><html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>newsrag · 登录 Sign in</title>
<style>body{{font-family:sans-serif;max-width:24em;margin:4em auto;padding:0 1em}}
label{{display:block;margin:.8em 0}}input{{display:block;width:100%;padding:.4em;margin-top:.2em}}
button{{padding:.5em 1.4em}}.err{{color:#900}}</style></head><body>
<h2>新闻资料库问答 · News archive Q&amp;A</h2>{note}
<form method="post" action="/login">{"<p>或 or</p>".join(fields)}<button type="submit">登录 Sign in</button></form>
</body></html>"""


def sign_in_routes(policy: Policy) -> APIRouter:
    """GET/POST /login and GET /logout, for browsers (out of the API's schema)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    def login_form() -> Response:
        if not policy.required:
            return RedirectResponse("/", 303)
        return HTMLResponse(policy.login_page())

    @router.post("/login")
    async def login(request: Request) -> Response:
        async with request.form(max_files=0, max_fields=10, max_part_size=4096) as form:
            session = policy.sign_in(**{k: str(form.get(k) or "") for k in ("token", "user", "password")})
        if session is None:
            return HTMLResponse(policy.login_page("登录信息不对 · Wrong credentials"), 401)
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    @router.get("/logout")
    def logout() -> Response:
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return router

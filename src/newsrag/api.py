"""The HTTP API: JSON over FastAPI, with the Gradio UI mounted at "/".

Every route is a thin shell over one Archive call. The Archive is shared by
all requests and is safe to share: reads run side by side, also while an
ingest writes, and writers take turns inside it.

Bad input is always a 4xx with ``{"detail": "<one line>"}``: pydantic checks
the request bodies, a ValueError from the archive (a bad date, say) becomes a
400, an unknown article a 404. A generation backend that fails (connection,
HTTP error, empty or cut-off stream, context overflow) is a 502, a timeout a 504,
with the one-line cause; once a stream has started, an ``error`` event instead.
The index's own disk refusing is a 507 (full) or a 503 (read-only, or the
folder gone), again one line, and the server stays up.
"""
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBasic, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from . import __version__
from .answering import Answer
from .archive import Archive
from .index.base import BackendError
from .index.storage import FULL, StorageError
from .articles import SUFFIXES, check_article_size, parse_date, parse_json
from .auth import Policy, sign_in_routes
from .dates import check_period
from .generators import GenerationError, GeneratorError
from .guard import LOOPBACK_NAMES, Guard
from .summarize import MAX_MAX_CHARS, MAX_TEXT_CHARS, MIN_MAX_CHARS
from .rerank import RerankerError
from .text import one_line
from .uploads import MAX_UPLOAD_BYTES, UploadError, stage

log = logging.getLogger("newsrag.api")

MAX_QUESTION = 2000
MAX_RECORDS = 10_000

# ---------------------------------------------------------------- request models


def _valid_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _valid_date(value: str | None) -> str | None:
    return parse_date(_valid_text(value)) if value is not None else None  # BadInput is a ValueError


Text = Annotated[str, AfterValidator(_valid_text)]
Question = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION),
                     AfterValidator(_valid_text)]
Date = Annotated[str | None, Field(max_length=40, description="YYYY-MM-DD (or 2024年3月1日, 20240301)",
                                   examples=["2024-03-01"]), AfterValidator(_valid_date)]
Source = Annotated[Text | None, Field(max_length=200, description="only articles whose source contains this")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Period(_Strict):
    since: Date = None
    until: Date = None
    source: Source = None

    @model_validator(mode="after")
    def _ordered(self):
        check_period(self.since, self.until)
        return self


class AskIn(_Period):
    question: Question
    k: int = Field(8, ge=1, le=100, description="passages to read")
    as_of: Date = Field(None, description="the date 「上个月」, 「去年」 count from (default today)")


class SearchIn(_Period):
    question: Question
    k: int = Field(10, ge=1, le=100, description="number of hits")
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"


class BriefIn(_Period):
    topic: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_QUESTION),
                     AfterValidator(_valid_text)] = Field("", description="empty: everything in the period")
    format: Literal["json", "markdown"] = "json"


class SummarizeIn(_Strict):
    text: Annotated[Text | None, Field(max_length=MAX_TEXT_CHARS, description="the article to summarize")] = None
    article_id: Annotated[Text | None, Field(max_length=500, description="or an article in the archive")] = None
    max_chars: int | None = Field(None, ge=MIN_MAX_CHARS, le=MAX_MAX_CHARS,
                                  description="longest summary (default a fifth of the article, 30-200)")
    title: Annotated[Text, Field(max_length=500, description="the text's headline, if any")] = ""

    @model_validator(mode="after")
    def _one_source(self):
        if (self.text is None) == (self.article_id is None):
            raise ValueError("give text or article_id (one of them)")
        return self


class RecordIn(BaseModel):
    """One article; other scalar fields are kept as metadata."""

    model_config = ConfigDict(extra="allow")
    id: Text | int | None = None
    title: Text | None = None
    date: Text | None = None
    source: Text | None = None
    url: Text | None = None
    author: Text | None = None
    text: Annotated[Text, AfterValidator(check_article_size)]


class RecordsIn(_Strict):
    records: list[RecordIn] = Field(min_length=1, max_length=MAX_RECORDS)


# ---------------------------------------------------------------- response models


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")  # a field the archive adds later passes through


class ErrorOut(BaseModel):
    detail: str


class CitationOut(_Out):
    n: int
    article_id: str
    title: str
    date: str | None
    source: str
    quote: str
    start: int
    end: int
    event_date: str | None = None


class AnswerSentenceOut(_Out):
    text: str
    citations: list[int]
    supported: bool


class AnswerOut(_Out):
    question: str
    text: str
    sentences: list[AnswerSentenceOut]
    citations: list[CitationOut]
    no_evidence: bool
    period: dict[str, Any] | None = None
    generator: str
    unsupported: list[str]
    truncated: bool = False


class HitOut(_Out):
    article_id: str
    title: str
    date: str | None
    source: str
    url: str
    text: str
    start: int
    end: int
    score: float
    retrievers: list[str]
    chunk_id: int
    duplicates: list[str]
    rerank_score: float | None = None


class SearchOut(BaseModel):
    hits: list[HitOut]


class SummarySentenceOut(_Out):
    text: str
    start: int | None
    end: int | None
    supported: bool


class SummaryOut(_Out):
    text: str
    sentences: list[SummarySentenceOut]
    max_chars: int
    generator: str
    article_id: str | None
    title: str
    truncated: bool
    unsupported: list[str]


class TimelineEntryOut(_Out):
    date: str | None
    text: str
    citation: int


class ThemeOut(_Out):
    headline: str
    summary: str
    article_ids: list[str]
    first_date: str | None
    last_date: str | None
    timeline: list[TimelineEntryOut]
    truncated: bool = False
    keywords: list[str] = []
    other: bool = False  # 「其他」: the stories that fit no theme (no summary, no keywords)


class BriefingOut(_Out):
    topic: str
    since: str | None
    until: str | None
    themes: list[ThemeOut]
    timeline: list[TimelineEntryOut]
    citations: list[CitationOut]
    articles: int
    duplicates_folded: int
    generator: str
    seconds: float
    coherence: float | None = None
    first_date: str | None = None
    last_date: str | None = None


class MarkdownOut(BaseModel):
    markdown: str


class ItemResultOut(_Out):
    origin: str
    status: Literal["added", "updated", "skipped", "duplicate", "failed"]
    article_id: str = ""
    title: str = ""
    reason: str = ""


class IngestReportOut(_Out):
    added: int
    updated: int
    skipped: int
    failed: int
    duplicates: int
    chunks: int
    embedded: int
    seconds: float
    items: list[ItemResultOut]


class ArticleOut(_Out):
    id: str
    title: str
    date: str | None
    source: str
    url: str
    author: str
    text: str
    origin: str
    canonical_id: str | None
    meta: dict[str, Any]
    duplicates: list[str]


class DeletedOut(BaseModel):
    deleted: list[str]


class StatsOut(_Out):
    index: str
    articles: int
    duplicates: int
    chunks: int
    undated: int
    first_date: str | None
    last_date: str | None
    sources: dict[str, int]
    embedder: str
    generator: str | None = None
    dim: int
    chunk_tokens: int | None
    chunk_overlap: int | None
    generation: int


class HealthOut(BaseModel):
    status: str
    articles: int


def _errors(*codes: int) -> dict:
    text = {400: "bad input", 401: "missing or wrong credentials", 404: "no such article",
            413: "upload too large", 415: "unsupported content type", 422: "invalid request",
            502: "the generation backend failed", 503: "the index is read-only or gone",
            504: "the generation backend timed out", 507: "no space left for the index"}
    return {c: {"model": ErrorOut, "description": text[c]} for c in codes}


# ---------------------------------------------------------------- errors



def _validation_detail(errors: list[dict]) -> str:
    if not errors:
        return "invalid request"
    e = errors[0]
    loc = [str(x) for x in e.get("loc", ()) if x != "body"]
    kind = e.get("type", "")
    msg = str(e.get("msg", "invalid input")).removeprefix("Value error, ")
    if kind == "json_invalid":
        err = (e.get("ctx") or {}).get("error")
        msg, loc = f"invalid JSON{': ' + str(err) if err else ''}", []
    elif kind == "missing" and not loc:
        msg = "a JSON request body is required"
    elif kind in ("model_attributes_type", "model_type", "dict_type") and not loc:
        msg = "the request body must be a JSON object"
    line = f"{'.'.join(loc)}: {msg}" if loc else msg
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return one_line(line)


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": _validation_detail(list(exc.errors()))}, status_code=422)


async def _on_value_error(request: Request, exc: ValueError) -> JSONResponse:
    return JSONResponse({"detail": one_line(exc) or "bad input"}, status_code=400)


async def _on_backend_error(request: Request, exc: BackendError) -> JSONResponse:
    return JSONResponse({"detail": one_line(exc)}, status_code=503)  # the search engine, not the request


async def _on_storage_error(request: Request, exc: StorageError) -> JSONResponse:
    # Expected in operation (a full disk, a read-only mount): a log line, not a traceback.
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": one_line(exc)}, status_code=507 if exc.kind == FULL else 503)


# ---------------------------------------------------------------- request bodies and the UI


def _records(raw: bytes) -> list[dict]:
    """The records of a JSON request body, checked (size, depth, fields) before any work starts."""
    try:
        data = parse_json(raw)
    except ValueError as e:  # bad syntax or encoding (JSONDecodeError, UnicodeDecodeError) or too deep
        error = getattr(e, "msg", None) or str(e)
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error",
                                       "ctx": {"error": error}}]) from None
    try:
        records = RecordsIn.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]) from None
    return [r.model_dump(exclude_none=True) for r in records.records]


# The two bodies POST /api/articles takes (it reads the body itself, so FastAPI cannot list them).
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/RecordsIn"}},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["files"],
        "properties": {"files": {
            "type": "array", "items": {"type": "string", "format": "binary"},
            "description": "files: " + " ".join(sorted(SUFFIXES)) + ", or a .zip of them"}}}}}}}


def _openapi(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        # RecordsIn is only named by _UPLOAD_BODY, so FastAPI does not collect it.
        _, defs = models_json_schema([(RecordsIn, "validation")], ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        app.openapi_schema = schema
    return app.openapi_schema


def _mount_ui(app: FastAPI, archive: Archive) -> FastAPI:
    """The Gradio UI at "/", when gradio is installed. It is guarded by the app's own Guard
    (so Gradio's own auth is not used) and takes uploads as large as the API does."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio as gr

        from .ui import CSS, I18N, build_ui
    except (ImportError, AttributeError) as e:
        log.warning("no web UI (%s); serving the API only", e)
        return app
    return gr.mount_gradio_app(app, build_ui(archive), path="/", css=CSS, max_file_size=MAX_UPLOAD_BYTES, i18n=I18N)


def generator_status(exc: GeneratorError) -> int:
    """502 for a backend that failed, 504 for one that timed out, 500 for a misconfigured one."""
    if isinstance(exc, GenerationError):
        return 504 if exc.timeout else 502
    return 500


async def _on_generator_error(request: Request, exc: GeneratorError) -> JSONResponse:
    return JSONResponse({"detail": one_line(exc)}, status_code=generator_status(exc))


async def _on_reranker_error(request: Request, exc: RerankerError) -> JSONResponse:
    return JSONResponse({"detail": one_line(exc)}, status_code=500)  # the server's setting, not the request


# ---------------------------------------------------------------- the app


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(archive: Archive, *, auth: tuple[str, str] | None = None, token: str | None = None,
               ui: bool = True, hosts: frozenset[str] | None = None) -> FastAPI:
    """The API over ``archive`` (and the Gradio UI at "/" when ``ui`` and newsrag.ui has build_ui).

    ``token`` and ``auth`` (user, password) guard every route but those in auth.OPEN_PATHS:
    scripts send ``Authorization: Bearer <token>`` or HTTP Basic, browsers sign in at /login.
    ``hosts``: the Host names the server answers to (None: any); see guard.Guard.
    The Archive is shared by every request; it lets reads run side by side and writers take turns.
    """
    app = FastAPI(
        title="newsrag", version=__version__,
        description="Ask questions of, search, and write cited briefings from an archive of Chinese news.")
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ValueError, _on_value_error)
    app.add_exception_handler(BackendError, _on_backend_error)
    app.add_exception_handler(StorageError, _on_storage_error)
    app.add_exception_handler(GeneratorError, _on_generator_error)
    app.add_exception_handler(RerankerError, _on_reranker_error)

    policy = Policy(token, auth)
    # Gradio adds permissive CORS headers unless the app has its own CORSMiddleware: this one
    # allows no other origin, so no other site's page may read what this server answers.
    app.add_middleware(CORSMiddleware, allow_origins=[])
    app.add_middleware(Guard, policy=policy, hosts=hosts)
    app.include_router(sign_in_routes(policy))
    # The security schemes only document the API in /openapi.json; the Guard decides.
    dependencies = ([Security(HTTPBearer(auto_error=False, description="the server's --token"))] if token else []) + (
        [Security(HTTPBasic(auto_error=False, description="the server's --auth user:password"))] if auth else [])
    api = APIRouter(prefix="/api", dependencies=dependencies,
                    responses={**(_errors(401) if policy.required else {}), **_errors(503)})

    @app.get("/healthz", response_model=HealthOut, tags=["health"])
    def healthz() -> dict:
        """Liveness and the number of articles."""
        return {"status": "ok", "articles": archive.stats()["articles"]}

    _answer_routes(api, archive)
    _article_routes(api, archive)
    app.include_router(api)
    app.openapi = lambda: _openapi(app)
    return _mount_ui(app, archive) if ui else app


def _answer_routes(api: APIRouter, archive: Archive) -> None:
    @api.post("/ask", response_model=AnswerOut, tags=["answers"], responses={
        200: {"description": "the answer; with ?stream=true server-sent events: `delta` {text} for each piece, "
                             "then `answer` (the full answer) or `error` {detail, status}, then `done`",
              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **_errors(400, 422, 502, 504)})
    def ask(body: AskIn, stream: bool = Query(False, description="stream the answer as server-sent events")):
        """A short answer whose every sentence cites the article it rests on."""
        kwargs = dict(k=body.k, since=body.since, until=body.until, source=body.source, as_of=body.as_of)
        if not stream:
            return archive.ask(body.question, **kwargs).to_dict()
        pieces = archive.ask_stream(body.question, **kwargs)
        first = next(pieces)  # a bad date fails here, before the 200 is sent

        def events() -> Iterator[str]:
            item = first
            try:
                while not isinstance(item, Answer):
                    yield _sse("delta", {"text": item})
                    item = next(pieces)
                yield _sse("answer", item.to_dict())
            except StopIteration:
                pass
            except GeneratorError as e:  # the 200 is gone: the same message and status, as an event
                yield _sse("error", {"detail": one_line(e), "status": generator_status(e)})
            except Exception as e:  # the 200 is gone: say so in the stream
                log.exception("streamed answer failed")
                yield _sse("error", {"detail": one_line(e) or type(e).__name__})
            yield _sse("done", {})

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.post("/search", response_model=SearchOut, tags=["search"], responses=_errors(400, 422))
    def search_(body: SearchIn) -> dict:
        """Hybrid (BM25 + dense), BM25-only or dense-only search; one passage per article."""
        hits = archive.search(body.question, k=body.k, since=body.since, until=body.until,
                              source=body.source, mode=body.mode)
        return {"hits": [h.to_dict() for h in hits]}

    @api.post("/brief", response_model=BriefingOut | MarkdownOut, tags=["answers"],
              responses=_errors(400, 422, 502, 504))
    def brief(body: BriefIn) -> dict:
        """Themes with cited summaries and a timeline, for a topic and/or a period."""
        b = archive.brief(body.topic, since=body.since, until=body.until, source=body.source)
        return {"markdown": b.to_markdown()} if body.format == "markdown" else b.to_dict()

    @api.post("/summarize", response_model=SummaryOut, tags=["answers"], responses=_errors(400, 404, 422, 502, 504))
    def summarize(body: SummarizeIn) -> dict:
        """A summary of ``text`` or of the stored article ``article_id``, with the sentences it took and where."""
        try:
            return archive.summarize(text=body.text, article_id=body.article_id, max_chars=body.max_chars,
                                     title=body.title).to_dict()
        except KeyError:
            raise HTTPException(404, f"no article with id {body.article_id!r}") from None


def _article_routes(api: APIRouter, archive: Archive) -> None:
    @api.post("/articles", response_model=IngestReportOut, tags=["articles"], openapi_extra=_UPLOAD_BODY,
              responses=_errors(400, 413, 415, 422, 507))
    async def add_articles(request: Request) -> dict:
        """Add articles: JSON ``{"records": [...]}`` or multipart file uploads (field ``files``).

        Returns what happened to each: added, updated, skipped (unchanged), duplicate, failed (with the reason).
        """
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json" or ctype.endswith("+json"):
            items = _records(await request.body())  # the Guard bounds the body's size
            return await run_in_threadpool(lambda: archive.ingest(items).to_dict())
        if ctype != "multipart/form-data":
            raise HTTPException(415, "send application/json {\"records\": [...]} or multipart/form-data "
                                     "with file field 'files'")
        async with request.form(max_files=10_000) as form:
            values = form.getlist("files")
            if not values:
                raise HTTPException(422, "files: no files uploaded (multipart field 'files')")
            if not all(isinstance(v, UploadFile) for v in values):
                raise HTTPException(422, "files: must be file uploads, not plain form fields")

            def work() -> dict:
                with tempfile.TemporaryDirectory(prefix="newsrag-upload-") as tmp:
                    try:
                        paths = stage([(v.filename, v.file) for v in values], Path(tmp))
                    except UploadError as e:
                        raise HTTPException(e.status, e.detail) from None
                    return archive.ingest(paths, staged_in=tmp).to_dict()

            return await run_in_threadpool(work)

    @api.get("/articles/{article_id:path}", response_model=ArticleOut, tags=["articles"], responses=_errors(404))
    def get_article(article_id: str) -> dict:
        """One article: clean text, metadata, and the ids of its near-duplicate copies."""
        art = archive.article(article_id)
        if art is None:
            raise HTTPException(404, f"no article with id {article_id!r}")
        return art

    @api.delete("/articles/{article_id:path}", response_model=DeletedOut, tags=["articles"],
                responses=_errors(404, 507))
    def delete_article(article_id: str) -> dict:
        """Remove an article from the index (a near-duplicate copy takes over as the canonical one)."""
        try:
            deleted = archive.delete(article_id)
        except KeyError:
            raise HTTPException(404, f"no article with id {article_id!r}") from None
        return {"deleted": deleted}

    @api.get("/stats", response_model=StatsOut, tags=["health"])
    def stats() -> dict:
        """Counts, date range, sources and index settings."""
        return archive.stats()


def serve(archive: Archive, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
          token: str | None = None) -> None:
    """Run the API (and UI) with uvicorn until interrupted."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import uvicorn

    loopback = host in LOOPBACK_NAMES
    if not loopback and not (auth or token):
        log.warning("serving on %s without --auth or --token: anyone who can reach it can change the index", host)
    app = create_app(archive, auth=auth, token=token, hosts=LOOPBACK_NAMES if loopback else None)
    uvicorn.run(app, host=host, port=port, log_level="info")

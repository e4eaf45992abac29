"""Article, and the loaders that turn files and records into articles.

A loader yields ``Article`` objects and ``LoadError`` objects in file order, so
one bad file or record never stops the batch: the caller reports the error and
goes on with the rest.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator

from . import text as textmod

RECORD_FIELDS = ("id", "title", "date", "source", "url", "author", "text")
# Names other exports use for the same fields.
_ALIASES = {
    "text": ("text", "content", "body", "article", "正文", "内容"),
    "title": ("title", "headline", "标题", "標題"),
    "date": ("date", "published", "publish_date", "pub_date", "published_at", "日期"),
    "source": ("source", "sitename", "media", "来源", "來源"),
}


@dataclass
class Article:
    """One news article. ``text`` is cleaned but in its original script; ``raw`` is as read."""

    text: str
    title: str = ""
    date: str | None = None
    source: str = ""
    url: str = ""
    author: str = ""
    id: str = ""
    raw: str = ""
    origin: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    whole_file: bool = False  # the article is its file: editing the file replaces it

    @property
    def content_hash(self) -> str:
        """Changes whenever anything a reader would see changes."""
        h = hashlib.sha1()
        for part in (self.title, self.date or "", self.source, self.url, self.author, self.text):
            h.update(part.encode("utf-8"))
            h.update(b"\x1f")
        return h.hexdigest()


@dataclass
class LoadError:
    origin: str
    reason: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.reason}"


class BadInput(ValueError):
    """A record or file that cannot become an article; the message says why."""


# ---------------------------------------------------------------- dates

_DATE = re.compile(
    r"(?P<y>(?:19|20)\d{2})\s*(?:[年/.\-]\s*)(?P<m>\d{1,2})\s*(?:[月/.\-]\s*)(?P<d>\d{1,2})\s*[日号號]?"
)


def parse_date(value: Any) -> str | None:
    """ISO ``YYYY-MM-DD`` from the common ways news exports write a date; None if empty.

    Raises BadInput for a value that is not a real calendar date.
    """
    if value is None:
        return None
    s = textmod.normalize_width(str(value)).strip()
    if not s:
        return None
    m = _DATE.search(s) or re.fullmatch(r"(?P<y>(?:19|20)\d{2})(?P<m>\d{2})(?P<d>\d{2})", s)
    if not m:
        raise BadInput(f"invalid date {str(value)[:40]!r} (expected YYYY-MM-DD)")
    try:
        return dt.date(int(m["y"]), int(m["m"]), int(m["d"])).isoformat()
    except ValueError:
        raise BadInput(f"invalid date {str(value)[:40]!r} (no such day)") from None


# ---------------------------------------------------------------- building articles

_DATELINE_MAX = 60
_SOURCE_LABEL = re.compile(r"(?:来源|來源|稿源)\s*[:：]\s*(\S+)")
_WIRE_SOURCE = re.compile(r"^([\u4e00-\u9fff]{2,12}?(?:网|網|报|報|社|台|臺|站|端))(?:讯|訊|电|電)")
_REPORTER = re.compile(r"[（(]\s*(?:记者|記者)\s*([^（）()]{2,20}?)\s*[）)]")
TERMINAL = "。！？!?；;…」』”"  # characters a sentence (not a heading) ends with


def _is_heading(line: str) -> bool:
    return 0 < len(line) <= 40 and line[-1] not in TERMINAL


def _split_header(lines: list[str], meta: dict[str, str], title: str = "") -> tuple[str, str | None, str, list[str]]:
    """Pull title, date and source from the short lines around the body.

    Plain-text news files put a headline first (or, when crawled, last), and a
    dateline such as 「2024年3月12日 来源：青溪融媒」 near the top.
    """
    date, source = None, meta.get("source", "")
    body = list(lines)
    if body and body[0].startswith("#"):
        body[0] = body[0].lstrip("#").strip()
    if title and title in body[:8] and body.index(title) + 1 < len(body):
        # Page furniture (menus, breadcrumbs) that an extractor kept sits above the headline.
        del body[: body.index(title) + 1]
    elif body and not title and _is_heading(body[0]):
        title = body.pop(0)
    for i, line in enumerate(body[:3]):
        if len(line) <= _DATELINE_MAX and _DATE.search(line) and line[-1] not in "。！？":
            date = parse_date(line)
            rest = _DATE.sub(" ", line)
            m = _SOURCE_LABEL.search(rest)
            rest = m.group(1) if m else re.sub(r"(?:发布时间|發佈時間|发布|發布|时间|時間|日期)\s*[:：]?", " ", rest)
            rest = re.sub(r"\d{1,2}:\d{2}(?::\d{2})?", " ", rest).strip(" |｜/·:：-")
            if rest and not source and len(rest) <= 20:
                source = rest
            del body[i]
            break
    if not title and body and _is_heading(body[-1]) and len(body) > 1:
        title = body.pop()
    return title, date, source, body


def build_article(raw: str, *, origin: str, title: str = "", date: Any = None, source: str = "",
                  url: str = "", author: str = "", id: Any = None, meta: dict | None = None) -> Article:
    """Clean ``raw`` text and fill in what the text itself says about the article."""
    cleaned, found = textmod.clean(raw)
    if meta:
        found.update({k: str(v) for k, v in meta.items() if v})
    lines = cleaned.split("\n") if cleaned else []
    title = re.sub(r"^(?:原标题|原標題)\s*[:：]\s*", "", textmod.normalize_width(str(title or "")).strip())
    title, text_date, text_source, lines = _split_header(lines, found, title)
    body = "\n".join(lines).strip()
    if not body:
        raise BadInput("no article text")
    iso_date = parse_date(date) if date not in (None, "") else text_date
    if not source:
        m = _WIRE_SOURCE.match(body)
        source = text_source or (m.group(1) if m else "")
    if not author:
        m = _REPORTER.search(body[:200])
        author = found.get("author", "") or (m.group(1).strip() if m else "")
    author = re.sub(r"^(?:记者|記者|作者|文)\s*[:：]?\s*", "", str(author or "")).strip()
    if not title:
        first = textmod.sentences(body)[0]
        title = first[:30] + ("…" if len(first) > 30 else "")
    art = Article(
        text=body, title=title, date=iso_date, source=str(source or "").strip(), url=str(url or ""),
        author=str(author or "").strip(), raw=raw, origin=origin,
        meta={k: v for k, v in found.items() if k not in ("source", "author")},
    )
    art.id = str(id).strip() if id not in (None, "") else "h" + hashlib.sha1(
        (art.title + "\n" + art.text).encode("utf-8")).hexdigest()[:16]
    return art


def _field(record: dict, name: str) -> Any:
    for key in _ALIASES.get(name, (name,)):
        if record.get(key) not in (None, ""):
            return record[key]
    return None


def check_article_size(text: str) -> str:
    """``text`` if it is no longer than one article may be, else BadInput (a ValueError).

    Cleaning, chunking and embedding take time in proportion to the text, under the
    archive's lock: this bound is what keeps one request from holding it for long.
    """
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_ARTICLE_BYTES:
        raise too_long(size)
    return text


def too_long(size: int) -> BadInput:
    return BadInput(f"text too long ({size / 2**20:.1f} MB > {MAX_ARTICLE_BYTES / 2**20:.0f} MB limit for one article)")


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def article_from_record(record: Any, origin: str) -> Article:
    if not isinstance(record, dict):
        raise BadInput(f"record is a {type(record).__name__}, expected an object with a 'text' field")
    for key, value in record.items():
        if isinstance(value, str) and not _valid_unicode(value):  # JSON may escape half a pair: "\ud800"
            raise BadInput(f"field {str(key)[:40]!r} is not valid Unicode (a lone surrogate)")
    body = _field(record, "text")
    if not isinstance(body, str) or not body.strip():
        raise BadInput("record has no 'text'")
    check_article_size(body)
    extra = {k: v for k, v in record.items() if k not in RECORD_FIELDS and isinstance(v, (str, int, float))}
    return build_article(
        body, origin=origin, title=_field(record, "title") or "", date=_field(record, "date"),
        source=_field(record, "source") or "", url=record.get("url") or "", author=record.get("author") or "",
        id=record.get("id"), meta={k: str(v) for k, v in extra.items() if k not in sum(_ALIASES.values(), ())},
    )


# ---------------------------------------------------------------- reading files

MAX_ARTICLE_BYTES = 5 * 1024 * 1024  # one .txt/.html article, or one record's text (UTF-8)
MAX_EXPORT_BYTES = 2 * 1024 ** 3  # a .jsonl/.csv export: streamed, one record at a time
# A JSON document parsed whole (a .json file, one JSONL line, an API request body) takes
# up to ~30 times its size in memory (a 192 MB file took 5.6 GB), so it is bounded; so is
# its nesting, which the parser follows by recursion.
MAX_JSON_BYTES = 50 * 1024 ** 2
MAX_JSON_DEPTH = 32
# Every CSV field is read whole before the record's own bounds are checked, so that an
# over-long record is one failed item (csv's default 128 KB limit would end the file).
csv.field_size_limit(MAX_EXPORT_BYTES)
_CHINESE_ENCODINGS = ["gb18030", "big5", "big5hkscs", "utf_16", "utf_8"]


def detect_encoding(data: bytes, complete: bool = True) -> str:
    """The encoding of ``data`` (the whole file, or its first part when not ``complete``):
    UTF-8 with or without BOM, GBK/GB18030, Big5 or UTF-16."""
    if not data.strip():
        raise BadInput("empty file")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    if b"\x00" in data[:8192]:
        raise BadInput("binary file, not text")
    try:
        data.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError as e:
        if not complete and e.start >= len(data) - 4:  # a character cut by the sample's end
            return "utf-8-sig"
    from charset_normalizer import from_bytes

    best = from_bytes(data[:1_000_000], cp_isolation=_CHINESE_ENCODINGS).best()
    if best is None or best.chaos > 0.2:
        raise BadInput("unreadable text: not UTF-8, GBK/GB18030 or Big5")
    return best.encoding


def decode(data: bytes) -> str:
    return data.decode(detect_encoding(data), errors="replace")


def _open_text(path: Path) -> io.TextIOBase:
    """An export opened for streaming, its encoding judged from the first megabyte."""
    with open(path, "rb") as f:
        head = f.read(1_000_000)
    encoding = detect_encoding(head, complete=len(head) < 1_000_000)
    return open(path, encoding=encoding, errors="replace", newline="")


def _read_limited(path: Path, limit: int) -> str:
    size = path.stat().st_size
    if size > limit:
        raise BadInput(f"file too large ({size / 2**20:.1f} MB > {limit / 2**20:.0f} MB limit for one article)")
    return decode(path.read_bytes())


def _load_text(path: Path) -> Iterator[Article | LoadError]:
    art = build_article(_read_limited(path, MAX_ARTICLE_BYTES), origin=str(path))
    art.whole_file = True
    yield art


# Elements whose text is never the article: trafilatura keeps the fallback text of iframes and
# noscript blocks, so they go before it looks (JSON-LD stays: it carries the date and author).
_NOT_CONTENT = ("script", "style", "noscript", "iframe", "frame", "frameset", "object", "embed", "template")


def strip_non_content(html: str) -> str:
    from lxml import etree
    from lxml import html as lxml_html

    try:
        tree = lxml_html.document_fromstring(html.encode("utf-8"), parser=lxml_html.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, ValueError):
        return html  # nothing to strip from what lxml cannot parse; trafilatura judges it
    for el in list(tree.iter(*_NOT_CONTENT)):
        if el.tag == "script" and (el.get("type") or "").strip().lower() == "application/ld+json":
            continue
        el.drop_tree()  # keeps the text after the element
    return lxml_html.tostring(tree, encoding="unicode")


def _load_html(path: Path) -> Iterator[Article | LoadError]:
    import trafilatura

    html = strip_non_content(_read_limited(path, MAX_ARTICLE_BYTES))
    doc = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False, include_tables=True)
    if doc is None or not (doc.text or "").strip():
        raise BadInput("no article text found in the HTML page")
    art = build_article(doc.text, origin=str(path), title=doc.title or "", date=doc.date,
                        source=doc.sitename or "", url=doc.url or "", author=doc.author or "")
    art.whole_file = True
    yield art


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion: it may be deep)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:  # deeper is refused anyway: no need to walk further
                todo.extend((c, depth + 1) for c in children)
    return deepest


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` within the bounds above. JSONDecodeError for bad syntax; BadInput
    (a ValueError) for a document too large or nested too deeply."""
    if len(text) > MAX_JSON_BYTES:
        raise BadInput(f"JSON too large ({len(text) / 2**20:.1f} MB > {MAX_JSON_BYTES / 2**20:.0f} MB limit)")
    too_deep = BadInput(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        data = json.loads(text)
    except RecursionError:  # the parser gave up long before memory or the stack did
        raise too_deep from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise too_deep
    return data


def _bounded_lines(f: io.TextIOBase) -> Iterator[str | None]:
    """The lines of ``f`` without their ends; None for a line over MAX_JSON_BYTES, which
    is skipped without being held in memory."""
    while line := f.readline(MAX_JSON_BYTES + 1):
        if len(line) > MAX_JSON_BYTES and not line.endswith("\n"):
            while (rest := f.readline(1 << 20)) and not rest.endswith("\n"):
                pass
            yield None
        else:
            yield line.rstrip("\r\n")


def _records_from_lines(path: Path, lines: Iterable[str | None]) -> Iterator[Article | LoadError]:
    for n, line in enumerate(lines, 1):
        origin = f"{path}:{n}"
        if line is None:
            yield LoadError(origin, f"line too long (over {MAX_JSON_BYTES / 2**20:.0f} MB)")
            continue
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except json.JSONDecodeError as e:
            yield LoadError(origin, f"invalid JSON line ({e.msg} at column {e.colno})")
            continue
        except BadInput as e:
            yield LoadError(origin, str(e))
            continue
        try:
            yield article_from_record(record, origin)
        except BadInput as e:
            yield LoadError(origin, str(e))


def _load_jsonl(path: Path) -> Iterator[Article | LoadError]:
    size = path.stat().st_size
    if size > MAX_EXPORT_BYTES:
        raise BadInput(f"file too large ({size / 2**20:.0f} MB)")
    with _open_text(path) as f:
        yield from _records_from_lines(path, _bounded_lines(f))


def _load_json(path: Path) -> Iterator[Article | LoadError]:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:  # checked before reading: the file is parsed whole
        raise BadInput(f"file too large for .json ({size / 2**20:.1f} MB > {MAX_JSON_BYTES / 2**20:.0f} MB "
                       "limit; save a large export as .jsonl, which is read a record at a time)")
    content = decode(path.read_bytes())
    try:
        data = parse_json(content)
    except json.JSONDecodeError as e:
        # A .json file holding one object per line is JSONL by another name.
        if e.msg == "Extra data":
            yield from _records_from_lines(path, content.splitlines())
            return
        raise BadInput(f"invalid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, dict):
        data = data.get("articles") or data.get("data") or data.get("items") or [data]
    if not isinstance(data, list):
        raise BadInput("expected a list of article objects")
    for i, record in enumerate(data):
        origin = f"{path}[{i}]"
        try:
            yield article_from_record(record, origin)
        except BadInput as e:
            yield LoadError(origin, str(e))


def _load_csv(path: Path) -> Iterator[Article | LoadError]:
    with _open_text(path) as f:
        yield from _csv_records(path, csv.DictReader(f))


def _csv_records(path: Path, reader: csv.DictReader) -> Iterator[Article | LoadError]:
    if not reader.fieldnames or _field({f: "x" for f in reader.fieldnames}, "text") is None:
        raise BadInput("CSV has no 'text' column")
    for n, row in enumerate(reader, 2):
        origin = f"{path}:{n}"
        try:
            yield article_from_record({k: v for k, v in row.items() if k is not None}, origin)
        except BadInput as e:
            yield LoadError(origin, str(e))


def _load_pdf(path: Path) -> Iterator[Article | LoadError]:
    from .documents import load_pdf  # imports this module: loaded on first use

    return load_pdf(path)


def _load_docx(path: Path) -> Iterator[Article | LoadError]:
    from .documents import load_docx

    return load_docx(path)


_LOADERS = {
    ".txt": _load_text, ".md": _load_text, ".markdown": _load_text,
    ".html": _load_html, ".htm": _load_html,
    ".jsonl": _load_jsonl, ".ndjson": _load_jsonl, ".json": _load_json, ".csv": _load_csv,
    ".pdf": _load_pdf, ".docx": _load_docx,
}
SUFFIXES = frozenset(_LOADERS)  # every file type ingest reads (the UI's and the API's uploads too)
# What to say about a file type people often have instead of one of those.
_INSTEAD = {".doc": "save it as .docx", ".wps": "save it as .docx", ".xls": "export it as .csv",
            ".xlsx": "export it as .csv", ".zip": "unpack it first; zips are unpacked when uploaded"}


def list_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[LoadError]]:
    """Files to load under ``paths`` (folders recursively, hidden files skipped)."""
    files, errors = [], []
    for p in map(Path, paths):
        if p.is_dir():
            inside = p.resolve()
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if f.is_file() and f.suffix.lower() in SUFFIXES and not any(x.startswith(".") for x in rel):
                    if f.is_symlink() and not f.resolve().is_relative_to(inside):
                        # A folder given to ingest (or unpacked from an upload) names its own files only.
                        errors.append(LoadError(str(f), "a link to a file outside the folder, not followed"))
                    else:
                        files.append(f)
        elif p.is_file():
            if p.suffix.lower() in _LOADERS:
                files.append(p)
            else:
                errors.append(LoadError(str(p), unsupported(p.name)))
        else:
            errors.append(LoadError(str(p), "no such file or folder"))
    return files, errors


def unsupported(name: str) -> str:
    """Why a file of this name is not read, and what would be."""
    suffix = PurePosixPath(name).suffix.lower()
    hint = _INSTEAD.get(suffix) or "newsrag reads " + " ".join(sorted(SUFFIXES))
    return f"unsupported file type {suffix or '(none)'!r} ({hint})"


def load_file(path: Path) -> Iterator[Article | LoadError]:
    """Articles of one file; any failure becomes a LoadError naming the file."""
    try:
        yield from _LOADERS[path.suffix.lower()](path)
    except BadInput as e:
        yield LoadError(str(path), str(e))
    except OSError as e:
        yield LoadError(str(path), f"cannot read: {e.strerror or e}")

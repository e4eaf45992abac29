"""Loaders for office documents: PDF (its text layer, by pypdf) and Word .docx (python-docx).

Each file is one article. Its title is the document's own (PDF /Title, the .docx core
property) when that is a real title, else the first heading line, as for a .txt; its date is
the dateline in the text, else the document's creation date. Both formats are checked
against their bounds (file size, pages, unpacked size) before any parsing starts.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
import zipfile
from pathlib import Path
from typing import Iterator

from .articles import (MAX_ARTICLE_BYTES, TERMINAL, Article, BadInput, LoadError, build_article,
                       check_article_size, too_long)
from .text import one_line

MAX_DOCUMENT_BYTES = 50 * 1024 ** 2  # a .pdf or .docx file as stored (photos make them large)
MAX_DOCX_UNPACKED = 50 * 1024 ** 2  # all parts of a .docx: python-docx reads every one into memory
MAX_PDF_PAGES = 500  # one article per file; a newspaper issue is far shorter

# Titles that authoring tools fill in by themselves and that say nothing about the story.
_TOOL_TITLE = re.compile(r"^(?:microsoft word\s*-.*|untitled.*|无标题.*|無標題.*|.*\.(?:docx?|pdf|wps|txt))$", re.I)
_CJK_GAP = re.compile(r"(?<=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]) (?=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])")


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise BadInput(f"file too large ({size / 2**20:.1f} MB > {MAX_DOCUMENT_BYTES / 2**20:.0f} MB "
                       f"limit for a {path.suffix.lower()} file)")


def _title(value) -> str:
    title = " ".join(str(value or "").split())
    return "" if _TOOL_TITLE.match(title) else title


def _date(value) -> str | None:
    return value.date().isoformat() if isinstance(value, dt.datetime) else None


def _document_article(text: str, path: Path, title: str, created: str | None, meta: dict) -> Article:
    check_article_size(text)
    art = build_article(text, origin=str(path), title=title, meta=meta)
    # The creation date is when the file was made: the text's own dateline says more.
    art.date = art.date or created
    art.whole_file = True
    return art


# ---------------------------------------------------------------- PDF


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def unwrap(lines: list[str]) -> list[str]:
    """The lines of one page with the breaks a full line forced removed.

    A PDF keeps positioned lines, not paragraphs: a line about as wide as the page's widest
    that does not end a sentence runs on into the next one (headings and the last line of
    a paragraph are shorter, or end with 。！？).
    """
    lines = [_CJK_GAP.sub("", " ".join(line.split())) for line in lines]
    lines = [line for line in lines if line]
    full = 0.85 * max(map(_width, lines), default=0)
    out: list[str] = []
    for line in lines:
        prev = out[-1] if out else ""
        if prev and _width(prev) >= full and prev[-1] not in TERMINAL:
            glue = " " if prev[-1].isascii() and line[0].isascii() and prev[-1] != "-" else ""
            out[-1] = prev + glue + line
        else:
            out.append(line)
    return out


def _has_images(page) -> bool:
    try:
        return len(page.images) > 0
    except Exception:  # an image pypdf cannot list is still an image
        return True


def _pdf_reader(path: Path):
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    if reader.is_encrypted and not reader.decrypt(""):  # an owner password alone does not stop reading
        raise BadInput("encrypted PDF: a password is needed to read it")
    return reader


def load_pdf(path: Path) -> Iterator[Article | LoadError]:
    _check_size(path)
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about odd files are not ours to print
    try:
        reader = _pdf_reader(path)
        n = len(reader.pages)
        if n == 0:
            raise BadInput("not a readable PDF (no pages)")
        if n > MAX_PDF_PAGES:
            raise BadInput(f"too many pages ({n} > {MAX_PDF_PAGES} limit for one PDF)")
        pages, scanned, size = [], [], 0
        for i, page in enumerate(reader.pages, 1):
            lines = unwrap((page.extract_text() or "").splitlines())
            if lines:
                pages.append("\n".join(lines))
                size += sum(len(line.encode("utf-8")) + 1 for line in lines)
                if size > MAX_ARTICLE_BYTES:  # no need to read the rest of it
                    raise too_long(size)
            elif _has_images(page):  # a page that is a picture: scanned; one with neither is blank
                scanned.append(i)
        info = reader.metadata
        title = _title(info.title) if info else ""
        try:
            created = _date(info.creation_date) if info else None
        except (ValueError, TypeError):  # a malformed /CreationDate is no date, not a bad file
            created = None
    except BadInput:
        raise
    except Exception as e:  # pypdf raises many types for a damaged or hostile file
        raise BadInput(f"not a readable PDF ({one_line(e, 200)})") from None
    if not pages:
        raise BadInput(f"no text layer ({'a scanned document' if scanned else 'no text'} in {n} page"
                       f"{'s' if n != 1 else ''}); run OCR on it first")
    yield _document_article("\n".join(pages), path, title, created, {"pages": str(n)})
    if scanned:  # the text pages are in; what the scanned ones say is not
        listed = ", ".join(map(str, scanned[:10])) + ("…" if len(scanned) > 10 else "")
        yield LoadError(str(path), f"no text layer on page{'s' if len(scanned) > 1 else ''} {listed} of {n} "
                                   "(scanned); the other pages were ingested")


# ---------------------------------------------------------------- Word .docx


def _docx_lines(document) -> Iterator[tuple[str, str]]:
    """(style name, text) of each paragraph and table row of the body, in order."""
    for block in document.iter_inner_content():
        if hasattr(block, "rows"):  # a table: one line per row
            for row in block.rows:
                cells = dict.fromkeys(c.text.strip() for c in row.cells)  # merged cells repeat
                yield "table", " ".join(c for c in cells if c)
        else:
            yield getattr(block.style, "name", "") or "", block.text.strip()


def load_docx(path: Path) -> Iterator[Article | LoadError]:
    _check_size(path)
    try:
        with zipfile.ZipFile(path) as zf:
            unpacked = sum(i.file_size for i in zf.infolist())  # reading stops at these sizes
    except zipfile.BadZipFile:
        raise BadInput("not a Word .docx file (not a zip package; an old .doc must be saved as .docx)") from None
    if unpacked > MAX_DOCX_UNPACKED:
        raise BadInput(f"too large unpacked ({unpacked / 2**20:.1f} MB > {MAX_DOCX_UNPACKED / 2**20:.0f} MB "
                       "limit for a .docx)")
    import docx

    try:
        document = docx.Document(str(path))
        lines = [(style, text) for style, text in _docx_lines(document) if text]
        props = document.core_properties
        title, created = _title(props.title), _date(props.created)
    except Exception as e:  # python-docx raises many types for a damaged or foreign package
        raise BadInput(f"not a readable Word .docx file ({one_line(e, 200)})") from None
    if not title and lines and re.match(r"(?:title|heading|标题|標題)", lines[0][0], re.I):
        title = lines[0][1]  # the document marks its first line as the headline
    yield _document_article("\n".join(text for _, text in lines), path, title, created, {})

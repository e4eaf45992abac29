"""PDF (its text layer) and Word .docx input, made here: loaders, bounds, and ingest through the
CLI, the HTTP API (files and zip members) and the web UI's ingest handler."""
from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import pytest
import requests

from newsrag import documents
from newsrag.api import create_app
from newsrag.articles import Article, LoadError, list_files, load_file
from newsrag.cli import main

from test_api import TIMEOUT, running
from test_security import file_data, gradio_call, upload

TITLE = "青溪区新建三座社区图书馆"
DATELINE = "2024年3月12日 来源：青溪融媒"
# The first paragraph as a PDF lays it out: broken into full lines, mid-sentence.
WRAPPED = ["青溪区文化和旅游局今天宣布，今年将在东湖、西岭和南桥三个街道新建社区图书",
           "馆，每座藏书不少于两万册，预计九月底前全部建成开放。"]
SECOND = "区财政为此安排专项资金一千二百万元。"
MUSEUM = "青溪博物馆推出夜场"
MUSEUM_TEXT = "青溪博物馆从五月十八日起每周六推出夜场，开放至晚上九点，门票免费。"


# ---------------------------------------------------------------- documents made here


def _pdf_string(text: str) -> bytes:
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def text_pdf(path: Path, pages: list[list[str]], title: str | None = None, created: str | None = None) -> Path:
    """A PDF whose text layer holds ``pages`` of lines: a Type0 font (Identity-H) whose ToUnicode
    map says which character each glyph id is, as PDFs written by office software have. No glyph
    shapes are embedded: extraction needs only the map."""
    chars = sorted(set("".join(line for page in pages for line in page)))
    cid = {c: i + 1 for i, c in enumerate(chars)}
    blocks = [chars[i:i + 100] for i in range(0, len(chars), 100)]  # at most 100 entries a block
    cmap = (b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Test def /CMapType 2 def\n"
            b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
            + b"".join(b"%d beginbfchar\n" % len(block)
                       + b"".join(b"<%04X> <%04X>\n" % (cid[c], ord(c)) for c in block) + b"endbfchar\n"
                       for block in blocks)
            + b"endcmap CMapName currentdict /CMap defineresource pop end end")
    n = len(pages)
    # 1 catalog, 2 page tree, 3 font, 4 CID font, 5 ToUnicode, 6 info, then (page, content) pairs
    kids = b" ".join(b"%d 0 R" % (7 + 2 * i) for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n),
        b"<< /Type /Font /Subtype /Type0 /BaseFont /TestSong /Encoding /Identity-H "
        b"/DescendantFonts [4 0 R] /ToUnicode 5 0 R >>",
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /TestSong "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /DW 1000 >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(cmap), cmap),
        b"<< " + (b"/Title " + _pdf_string(title) if title else b"")
        + (b" /CreationDate (D:%s)" % created.encode() if created else b"") + b" >>",
    ]
    for i, page in enumerate(pages):
        shown = b"\n".join(b"<" + b"".join(b"%04X" % cid[c] for c in line) + b"> Tj T*" for line in page)
        content = b"BT /F1 12 Tf 16 TL 56 780 Td\n" + shown + b"\nET"
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                       b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (8 + 2 * i))
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    out, offsets = b"%PDF-1.7\n", []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(out)
    return path


def scanned_pdf(path: Path, pages: int = 1) -> Path:
    """A PDF of page images and no text, as a scanner makes it."""
    from PIL import Image

    images = [Image.new("L", (300, 400), 255) for _ in range(pages)]
    images[0].save(path, "PDF", save_all=True, append_images=images[1:])
    return path


def article_docx(path: Path, created: dt.datetime) -> Path:
    """The library story as Word writes it: core title, a Title-style headline, a table."""
    import docx

    doc = docx.Document()
    doc.core_properties.title = TITLE
    doc.core_properties.created = created
    doc.add_heading(TITLE, level=0)  # Word's "Title" style
    doc.add_paragraph(DATELINE)
    doc.add_paragraph("".join(WRAPPED))
    table = doc.add_table(rows=2, cols=2)
    for (r, c), text in zip([(0, 0), (0, 1), (1, 0), (1, 1)], ["街道", "藏书", "东湖", "两万册"]):
        table.cell(r, c).text = text
    doc.add_paragraph(SECOND)
    doc.save(path)
    return path


def museum_docx(path: Path) -> Path:
    """A .docx with no core title and no dateline: its heading and its creation date count."""
    import docx

    doc = docx.Document()
    doc.core_properties.created = dt.datetime(2024, 5, 18, 8, 0)
    doc.add_heading(MUSEUM, level=1)
    doc.add_paragraph(MUSEUM_TEXT)
    doc.save(path)
    return path


def load(path: Path) -> list[Article | LoadError]:
    return list(load_file(path))


def only_article(path: Path) -> Article:
    items = load(path)
    assert len(items) == 1 and isinstance(items[0], Article), items
    return items[0]


def only_error(path: Path) -> str:
    items = load(path)
    assert len(items) == 1 and isinstance(items[0], LoadError), items
    assert items[0].origin == str(path) and "\n" not in items[0].reason
    return items[0].reason


# ---------------------------------------------------------------- PDF


def test_pdf_title_from_metadata_date_from_the_dateline_and_lines_unwrapped(tmp_path):
    p = text_pdf(tmp_path / "news.pdf", [[TITLE, DATELINE, *WRAPPED, SECOND]], title=TITLE,
                 created="20240401101500+08'00'")
    art = only_article(p)
    assert art.title == TITLE and art.whole_file
    assert art.date == "2024-03-12"  # the text's dateline, not the file's creation date
    assert art.source == "青溪融媒"
    assert art.text.split("\n") == ["".join(WRAPPED), SECOND]  # the forced line break is gone
    assert art.meta["pages"] == "1"


def test_pdf_without_metadata_takes_the_first_heading_and_the_creation_date(tmp_path):
    p = text_pdf(tmp_path / "news.pdf", [[TITLE, *WRAPPED], [SECOND]], title="Microsoft Word - 文档1.docx",
                 created="20240401101500+08'00'")
    art = only_article(p)
    assert art.title == TITLE  # the tool's made-up title is not the story's
    assert art.date == "2024-04-01"
    assert SECOND in art.text and art.meta["pages"] == "2"


def test_a_scanned_pdf_is_a_no_text_layer_error(tmp_path):
    reason = only_error(scanned_pdf(tmp_path / "scan.pdf", pages=2))
    assert reason.startswith("no text layer") and "scanned" in reason and "2 pages" in reason


def test_scanned_pages_of_a_text_pdf_are_named_and_the_rest_ingested(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.append(str(text_pdf(tmp_path / "a.pdf", [[TITLE, *WRAPPED]])))
    writer.append(str(scanned_pdf(tmp_path / "b.pdf")))
    writer.write(tmp_path / "mixed.pdf")
    art, err = load(tmp_path / "mixed.pdf")
    assert isinstance(art, Article) and art.title == TITLE
    assert isinstance(err, LoadError) and "no text layer on page 2 of 2" in err.reason


def test_pdf_bounds_are_checked_before_reading(tmp_path, monkeypatch):
    p = text_pdf(tmp_path / "three.pdf", [[TITLE, *WRAPPED]] * 3)
    monkeypatch.setattr(documents, "MAX_PDF_PAGES", 2)
    assert "too many pages (3 > 2" in only_error(p)
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 100)
    assert "file too large" in only_error(p) and ".pdf" in only_error(p)


@pytest.mark.parametrize("data", [b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog", b"not a pdf at all", b""])
def test_a_damaged_pdf_is_one_line(tmp_path, data):
    p = tmp_path / "bad.pdf"
    p.write_bytes(data)
    assert "not a readable PDF" in only_error(p)


def test_unwrap_keeps_headings_and_sentence_ends():
    lines = ["短标题", "这一行写满了整个版面的宽度因此在句子中间被折断", "成两行。", "下一段 开头 也写满了整个版面的宽度还没有说完",
             "的话。", "Latin text that fills the whole width of the", "line."]
    assert documents.unwrap(lines) == ["短标题", "这一行写满了整个版面的宽度因此在句子中间被折断成两行。",
                                       "下一段开头也写满了整个版面的宽度还没有说完的话。",
                                       "Latin text that fills the whole width of the line."]


# ---------------------------------------------------------------- Word .docx


def test_docx_title_date_and_tables(tmp_path):
    art = only_article(article_docx(tmp_path / "news.docx", dt.datetime(2024, 4, 1, 9, 0)))
    assert art.title == TITLE and art.date == "2024-03-12" and art.source == "青溪融媒"
    lines = art.text.split("\n")
    assert lines[0] == "".join(WRAPPED) and "街道 藏书" in lines and "东湖 两万册" in lines and lines[-1] == SECOND


def test_docx_heading_style_is_the_title_and_created_the_date_when_the_text_has_none(tmp_path):
    art = only_article(museum_docx(tmp_path / "a.docx"))
    assert art.title == MUSEUM and art.date == "2024-05-18" and art.text == MUSEUM_TEXT


def test_docx_bounds_and_damage(tmp_path, monkeypatch):
    (tmp_path / "old.docx").write_bytes(b"\xd0\xcf\x11\xe0 an old binary .doc renamed")
    assert "not a Word .docx file" in only_error(tmp_path / "old.docx")
    with zipfile.ZipFile(tmp_path / "other.docx", "w") as z:
        z.writestr("hello.txt", "a zip, not a Word package")
    assert "not a readable Word .docx file" in only_error(tmp_path / "other.docx")
    p = article_docx(tmp_path / "news.docx", dt.datetime(2024, 4, 1))
    monkeypatch.setattr(documents, "MAX_DOCX_UNPACKED", 1000)  # a zip bomb is refused from its directory
    assert "too large unpacked" in only_error(p)
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 1000)
    assert "file too large" in only_error(p)


def test_other_types_are_named_with_what_is_read(tmp_path):
    (tmp_path / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    files, errors = list_files([tmp_path / "old.doc", tmp_path / "photo.png"])
    assert not files
    assert errors[0].reason == "unsupported file type '.doc' (save it as .docx)"
    assert errors[1].reason.startswith("unsupported file type '.png' (newsrag reads ") and ".pdf" in errors[1].reason


# ---------------------------------------------------------------- through the CLI, the API and the UI


@pytest.fixture
def documents_dir(tmp_path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    text_pdf(d / "library.pdf", [[TITLE, DATELINE, *WRAPPED, SECOND]], title=TITLE)
    museum_docx(d / "museum.docx")
    scanned_pdf(d / "scan.pdf")
    return d


def test_cli_ingests_pdf_and_docx_and_names_the_scanned_file(tmp_path, capsys, documents_dir):
    idx = tmp_path / "idx"
    code = main(["ingest", str(documents_dir), "--index", str(idx), "-q", "--json"])
    out, err = capsys.readouterr()
    assert code == 1  # one file failed
    report = json.loads(out)
    assert report["added"] == 2 and report["failed"] == 1
    assert f"newsrag: error: {documents_dir / 'scan.pdf'}: no text layer" in err
    titles = {Path(i["origin"]).name: i["title"] for i in report["items"] if i["status"] == "added"}
    assert titles == {"library.pdf": TITLE, "museum.docx": MUSEUM}
    assert main(["search", "社区图书馆藏书多少", "--index", str(idx), "-k", "1", "--json"]) == 0
    hit = json.loads(capsys.readouterr()[0])[0]
    assert hit["title"] == TITLE and hit["date"] == "2024-03-12"


@pytest.fixture(scope="module")
def open_server(archive):
    """API and UI together, as `newsrag serve` runs them."""
    with running(create_app(archive)) as url:
        yield url


def test_api_upload_of_pdf_docx_and_a_zip_of_them(open_server, documents_dir):
    files = [("files", (p.name, p.read_bytes())) for p in sorted(documents_dir.iterdir())]
    r = requests.post(open_server + "/api/articles", files=files, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    items = {i["origin"]: i for i in r.json()["items"]}
    assert items["upload:library.pdf"]["status"] in ("added", "skipped")
    assert items["upload:library.pdf"]["title"] == TITLE
    assert items["upload:museum.docx"]["title"] == MUSEUM
    assert "no text layer" in items["upload:scan.pdf"]["reason"]
    museum = requests.get(f"{open_server}/api/articles/{items['upload:museum.docx']['article_id']}",
                          timeout=TIMEOUT).json()
    assert museum["date"] == "2024-05-18" and museum["text"] == MUSEUM_TEXT

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("library.pdf", "museum.docx"):
            z.write(documents_dir / name, f"2024/{name}")
        z.writestr("2024/photo.png", b"\x89PNG")
        z.writestr("2024/.DS_Store", b"junk")  # the tools' litter is left out without a word
    r = requests.post(open_server + "/api/articles", files=[("files", ("bundle.zip", buf.getvalue()))], timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    items = {i["origin"]: i for i in r.json()["items"]}
    assert set(items) == {"upload:bundle.zip/2024/library.pdf", "upload:bundle.zip/2024/museum.docx",
                          "upload:bundle.zip/2024/photo.png"}
    assert items["upload:bundle.zip/2024/photo.png"]["status"] == "failed"
    assert "unsupported file type '.png'" in items["upload:bundle.zip/2024/photo.png"]["reason"]
    assert items["upload:bundle.zip/2024/library.pdf"]["title"] == TITLE
    assert items["upload:bundle.zip/2024/museum.docx"]["title"] == MUSEUM


def test_the_ui_ingests_pdf_and_docx_and_says_what_it_left_out(open_server, documents_dir):
    paths = [upload(open_server, p.name, p.read_bytes()) for p in sorted(documents_dir.iterdir())]
    update, *_ = gradio_call(open_server, "ingest", [[file_data(p) for p in paths], "", "English"])  # raw statuses
    rows = {row[0]: row for row in update["value"]["data"]}  # file, status, title, reason
    assert rows["upload:library.pdf"][2] == TITLE and rows["upload:library.pdf"][1] in ("added", "skipped")
    assert rows["upload:museum.docx"][2] == MUSEUM
    assert rows["upload:scan.pdf"][1] == "failed" and "no text layer" in rows["upload:scan.pdf"][3]

"""The Gradio web UI: Ask, Briefing, Archive. A thin shell over Archive.

Every handler catches its own errors and shows them in the page, in Chinese and
English, never as a stack trace.
"""
from __future__ import annotations

import contextlib
import html
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from .answering import TRUNCATED_MARK  # noqa: E402
from .archive import Archive, IngestReport  # noqa: E402
from .articles import SUFFIXES  # noqa: E402
from .uploads import UploadError, stage  # noqa: E402

TEXT = {
    "zh": {
        "title": "新闻资料库问答", "ask_tab": "提问", "brief_tab": "简报", "archive_tab": "资料库",
        "question": "问题（简体或繁体）", "since": "起始日期 YYYY-MM-DD", "until": "结束日期 YYYY-MM-DD",
        "source": "来源（可选）", "ask": "提问", "answer": "回答", "sources": "引用来源", "recent": "最近的问题",
        "topic": "主题（可留空）", "generator": "生成方式", "make_brief": "生成简报", "briefing": "简报",
        "download": "下载 Markdown", "chart": "每日文章数（按主题）", "upload": "上传文件或 zip",
        "ingest": "导入", "results": "导入结果", "find": "按标题或 ID 查找", "articles": "文章列表",
        "delete_id": "要删除的文章 ID", "delete": "删除", "stats": "资料库统计", "coverage": "每月文章数（按来源）",
        "refresh": "刷新", "language": "界面语言",
    },
    "en": {
        "title": "News archive Q&A", "ask_tab": "Ask", "brief_tab": "Briefing", "archive_tab": "Archive",
        "question": "Question (simplified or traditional Chinese)", "since": "From YYYY-MM-DD",
        "until": "To YYYY-MM-DD", "source": "Source (optional)", "ask": "Ask", "answer": "Answer",
        "sources": "Cited sources", "recent": "Recent questions", "topic": "Topic (optional)",
        "generator": "Generator", "make_brief": "Make briefing", "briefing": "Briefing",
        "download": "Download Markdown", "chart": "Articles per day, by theme", "upload": "Upload files or a zip",
        "ingest": "Ingest", "results": "Ingest results", "find": "Find by title or id", "articles": "Articles",
        "delete_id": "Article id to delete", "delete": "Delete", "stats": "Archive statistics",
        "coverage": "Articles per month, by source", "refresh": "Refresh", "language": "Language",
    },
}

# Plain-language messages for the errors a user can cause or meet; anything else is shown
# by its one-line message, never with a traceback.
_KNOWN = [
    ("invalid date", "日期格式不对，请用 YYYY-MM-DD。", "The date is not valid; use YYYY-MM-DD."),
    ("cannot load generation model", "找不到生成模型，请检查模型名称或路径。", "The generation model could not be loaded."),
    ("cannot reach", "连接不上生成服务。", "The generation server cannot be reached."),
    ("generation failed", "生成模型出错，没有得到回答。", "The generation backend failed; there is no answer."),
    ("needs a model", "这个生成方式需要先设定模型（--model）。", "This generator needs a model (--model)."),
    ("needs a base URL", "这个生成方式需要先设定服务地址（--base-url）。", "This generator needs a server URL (--base-url)."),
    ("no article with id", "没有这个 ID 的文章。", "There is no article with that id."),
    ("not a file uploaded through this page", "只能导入通过本页面上传的文件。",
     "Only files uploaded through this page can be ingested."),
    ("the limit for one upload", "上传的文件太大。", "The upload is too large."),
]

CSS = """
.nr-error {border:1px solid #d33; background:#fff3f3; color:#900; padding:10px 14px; border-radius:8px}
.nr-card {border:1px solid #ccd; border-radius:8px; padding:10px 14px; margin:8px 0; background:#fafbff}
.nr-card h4 {margin:0 0 4px 0; font-size:1em}
.nr-meta {color:#667; font-size:0.85em; margin-bottom:6px}
.nr-card mark {background:#ffe58a; padding:0 2px}
.nr-answer {font-size:1.05em; line-height:1.8}
.nr-answer a {text-decoration:none; font-weight:600}
"""


def notice(zh: str, en: str, detail: str = "") -> str:
    small = f"<br><small>{html.escape(detail)}</small>" if detail else ""
    return f'<div class="nr-error"><b>{html.escape(zh)}</b><br>{html.escape(en)}{small}</div>'


def error_box(e: BaseException) -> str:
    msg = (str(e).splitlines() or [type(e).__name__])[0]
    for key, zh, en in _KNOWN:
        if key in msg:
            return notice(zh, en, msg)
    return notice("出错了：" + msg, "Error: " + msg)


def answer_html(answer) -> str:
    """The answer with each [n] linked to its source card."""
    parts = []
    for s in answer.sentences:
        marks = "".join(f'<a href="#cite-{n}" title="来源 {n}">[{n}]</a>' for n in s.citations)
        text = html.escape(s.text)
        parts.append(f"{text}{marks}" if s.supported else f'<span title="unsupported">{text}[?]</span>')
    body = "".join(parts) or html.escape(answer.text)
    if answer.truncated:
        body += f'<span class="nr-meta">{html.escape(TRUNCATED_MARK)}</span>'
    period = ""
    if answer.period:
        p = answer.period
        period = (f'<div class="nr-meta">按问题中的「{html.escape(p["words"])}」限定为 {p["since"]} 至 {p["until"]}'
                  f' · limited to {p["since"]} – {p["until"]}</div>')
    return f'<div class="nr-answer">{body}</div>{period}'


def cards_html(archive: Archive, answer) -> str:
    """One card per citation: title, date, source, and the quote highlighted in its context."""
    cards = []
    for c in answer.citations:
        art = archive.article(c.article_id) or {"text": c.quote}
        text = art["text"]
        a, b = max(0, c.start - 90), min(len(text), c.end + 90)
        context = (("…" if a else "") + html.escape(text[a:c.start]) + "<mark>" + html.escape(text[c.start:c.end])
                   + "</mark>" + html.escape(text[c.end:b]) + ("…" if b < len(text) else ""))
        when = c.date or "日期不详"
        if c.event_date and c.event_date != c.date:
            when += f"（文中所指 {c.event_date}）"
        cards.append(f'<div class="nr-card" id="cite-{c.n}"><h4>[{c.n}] {html.escape(c.title)}</h4>'
                     f'<div class="nr-meta">{html.escape(when)} · {html.escape(c.source or "来源不详")} · '
                     f'<code>{html.escape(c.article_id)}</code></div>{context}</div>')
    return "".join(cards)


def period_chart(brief) -> pd.DataFrame:
    """Articles per day (per week when the period is long), stacked by theme."""
    rows = [{"date": e.date, "theme": f"{i}. {t.headline[:16]}", "articles": 1}
            for i, t in enumerate(brief.themes, 1) for e in t.timeline if e.date]
    if not rows:
        return pd.DataFrame({"date": [], "theme": [], "articles": []})
    df = pd.DataFrame(rows)
    days = pd.to_datetime(df["date"])
    if (days.max() - days.min()).days > 45:
        df["date"] = (days - pd.to_timedelta(days.dt.weekday, unit="D")).dt.strftime("%Y-%m-%d")
    return df.groupby(["date", "theme"], as_index=False)["articles"].sum()


def uploaded_paths(blocks: gr.Blocks, files: list) -> list[Path]:
    """The files of an ingest call, when every one came through this page's own upload;
    else an UploadError naming the first that did not.

    Gradio checks that a file named in a call was uploaded only in an app it launched
    itself, not in one mounted in FastAPI as this one is: without this check a crafted
    call could have any file on the server read into the archive.
    """
    cache = Path(gr.utils.get_upload_folder()).resolve()
    paths = []
    for f in files:
        name = str(getattr(f, "name", f))
        path = Path(name).resolve()
        if name not in blocks.upload_file_set or not path.is_relative_to(cache) or not path.is_file():
            raise UploadError(403, f"{Path(name).name}: not a file uploaded through this page")
        paths.append(path)
    return paths


def ingest_uploads(archive: Archive, blocks: gr.Blocks, files: list, progress) -> IngestReport:
    """Stage the uploaded ``files`` as the API stages its uploads (same bounds) and ingest them."""
    paths = uploaded_paths(blocks, files)
    with tempfile.TemporaryDirectory(prefix="newsrag-upload-") as tmp, contextlib.ExitStack() as opened:
        staged = stage([(p.name, opened.enter_context(open(p, "rb"))) for p in paths], Path(tmp))
        opened.close()  # copied: no need to hold them open through the ingest
        return archive.ingest(staged, progress=progress, staged_in=tmp)


class _Labels:
    """Every component whose words follow the language switch, with the TEXT key it shows."""

    def __init__(self):
        self.items: list[tuple[object, str, str]] = []  # (component, key, how: label | value | heading)

    def __call__(self, component, key: str, how: str = "label"):
        self.items.append((component, key, how))
        return component

    def switch(self, choice: str) -> list:
        t = TEXT["en" if choice == "English" else "zh"]
        form = {"label": lambda k: gr.update(label=t[k]), "value": lambda k: gr.update(value=t[k]),
                "h2": lambda k: f"## {t[k]}", "h3": lambda k: f"### {t[k]}"}
        return [form[how](key) for _, key, how in self.items]


def _ask_tab(archive: Archive, say: _Labels) -> None:
    def ask(question, since, until, source, recent):
        recent = list(recent or [])
        if not (question or "").strip():
            yield notice("请输入问题。", "Please type a question."), "", recent, gr.update()
            return
        try:
            written, answer = "", None
            for piece in archive.ask_stream(question, since=since or None, until=until or None,
                                            source=source or None):
                if isinstance(piece, str):
                    written += piece
                    yield f'<div class="nr-answer">{html.escape(written)}</div>', "", recent, gr.update()
                else:
                    answer = piece
            if question not in recent:
                recent = [question] + recent[:9]
            yield answer_html(answer), cards_html(archive, answer), recent, gr.update(choices=recent)
        except Exception as e:  # shown in the page, not raised into Gradio's generic error
            yield error_box(e), "", recent, gr.update()

    with say(gr.Tab(TEXT["zh"]["ask_tab"]), "ask_tab"):
        recent_state = gr.State([])
        with gr.Row():
            question = say(gr.Textbox(label=TEXT["zh"]["question"], scale=4, elem_id="question",
                                      placeholder="會議關於人才政策作了什麼決定？"), "question")
            ask_btn = say(gr.Button(TEXT["zh"]["ask"], variant="primary", scale=1, elem_id="ask"), "ask", "value")
        with gr.Row():
            since = say(gr.Textbox(label=TEXT["zh"]["since"]), "since")
            until = say(gr.Textbox(label=TEXT["zh"]["until"]), "until")
            source = say(gr.Textbox(label=TEXT["zh"]["source"]), "source")
            recent = say(gr.Dropdown([], label=TEXT["zh"]["recent"], allow_custom_value=True), "recent")
        with gr.Row():
            with gr.Column(scale=3):
                say(gr.Markdown(f"### {TEXT['zh']['answer']}"), "answer", "h3")
                answer = gr.HTML(elem_id="answer")
            with gr.Column(scale=2):
                say(gr.Markdown(f"### {TEXT['zh']['sources']}"), "sources", "h3")
                cards = gr.HTML(elem_id="sources")
    inputs, outputs = [question, since, until, source, recent_state], [answer, cards, recent_state, recent]
    ask_btn.click(ask, inputs, outputs)
    question.submit(ask, inputs, outputs)
    recent.select(lambda q: q, recent, question)


def _brief_tab(archive: Archive, say: _Labels) -> None:
    def make_brief(topic, since, until, generator, progress=gr.Progress()):
        try:
            other = archive.using(generator=generator) if generator != archive.settings.generator else archive
            brief = other.brief(topic or "", since=since or None, until=until or None,
                                progress=lambda done, total, note: progress((done, total), desc=note))
            md = brief.to_markdown()
            path = Path(tempfile.mkdtemp(prefix="newsrag-brief-")) / "briefing.md"
            path.write_text(md, encoding="utf-8")
            return md, gr.update(value=str(path), visible=True), period_chart(brief), ""
        except Exception as e:
            return "", gr.update(visible=False), None, error_box(e)

    with say(gr.Tab(TEXT["zh"]["brief_tab"]), "brief_tab"):
        with gr.Row():
            topic = say(gr.Textbox(label=TEXT["zh"]["topic"]), "topic")
            since = say(gr.Textbox(label=TEXT["zh"]["since"]), "since")
            until = say(gr.Textbox(label=TEXT["zh"]["until"]), "until")
            generator = say(gr.Radio(["extractive", "transformers", "openai", "llamacpp"], value=archive.settings.generator,
                                     label=TEXT["zh"]["generator"]), "generator")
        brief_btn = say(gr.Button(TEXT["zh"]["make_brief"], variant="primary"), "make_brief", "value")
        brief_error = gr.HTML()
        chart = say(gr.BarPlot(x="date", y="articles", color="theme", label=TEXT["zh"]["chart"], height=260),
                    "chart")
        download = say(gr.File(label=TEXT["zh"]["download"], visible=False), "download")
        brief_md = gr.Markdown()
    brief_btn.click(make_brief, [topic, since, until, generator], [brief_md, download, chart, brief_error])


def _archive_tab(archive: Archive, ui: gr.Blocks, say: _Labels) -> None:
    def refresh(query):
        rows = archive.list_articles(query or "")
        stats = archive.stats()
        table = pd.DataFrame(rows or [{"id": "", "title": "", "date": "", "source": "", "canonical_id": ""}])
        lines = [f"| {k} | {v if k != 'sources' else ', '.join(f'{s} ({n})' for s, n in v.items())} |"
                 for k, v in stats.items()]
        chart = pd.DataFrame(archive.coverage() or [{"month": "", "source": "", "articles": 0}])
        return table, "| | |\n|---|---|\n" + "\n".join(lines), chart

    def ingest(files, progress=gr.Progress()):
        if not files:
            return None, notice("请先选择文件。", "Choose files first."), *refresh("")
        try:
            report = ingest_uploads(archive, ui, files, lambda d, t, note: progress((d, t), desc="ingest"))
            table = pd.DataFrame([{"file": r.origin, "status": r.status,
                                   "title": r.title, "reason": r.reason} for r in report.items])
            return table, f"<p>{html.escape(report.summary())}</p>", *refresh("")
        except Exception as e:  # an UploadError too: its message is its one-line detail
            return None, error_box(e), *refresh("")

    def delete(article_id, query):
        try:
            archive.delete(article_id.strip())
            return f"<p>已删除 deleted <code>{html.escape(article_id)}</code></p>", *refresh(query)
        except Exception as e:
            return error_box(e), *refresh(query)

    with say(gr.Tab(TEXT["zh"]["archive_tab"]), "archive_tab"):
        with gr.Row():
            files = say(gr.File(label=TEXT["zh"]["upload"], file_count="multiple", elem_id="upload",
                                file_types=sorted(SUFFIXES) + [".zip"]),
                        "upload")
            ingest_btn = say(gr.Button(TEXT["zh"]["ingest"], variant="primary", elem_id="ingest"), "ingest", "value")
        ingest_msg = gr.HTML(elem_id="ingest-msg")
        results = say(gr.Dataframe(pd.DataFrame(columns=["file", "status", "title", "reason"]),
                                   label=TEXT["zh"]["results"], interactive=False, elem_id="ingest-results"),
                      "results")
        with gr.Row():
            find = say(gr.Textbox(label=TEXT["zh"]["find"]), "find")
            refresh_btn = say(gr.Button(TEXT["zh"]["refresh"]), "refresh", "value")
            delete_id = say(gr.Textbox(label=TEXT["zh"]["delete_id"]), "delete_id")
            delete_btn = say(gr.Button(TEXT["zh"]["delete"], variant="stop"), "delete", "value")
        articles = say(gr.Dataframe(label=TEXT["zh"]["articles"], interactive=False), "articles")
        with gr.Row():
            stats = gr.Markdown()
            coverage = say(gr.BarPlot(x="month", y="articles", color="source", label=TEXT["zh"]["coverage"],
                                      height=260), "coverage")
    shown = [articles, stats, coverage]
    ingest_btn.click(ingest, files, [results, ingest_msg, *shown])
    refresh_btn.click(refresh, find, shown)
    find.submit(refresh, find, shown)
    delete_btn.click(delete, [delete_id, find], [ingest_msg, *shown])
    ui.load(refresh, find, shown)


def build_ui(archive: Archive) -> gr.Blocks:
    """Three tabs over ``archive`` (Ask, Briefing, Archive), in Chinese or English."""
    say = _Labels()
    # Gradio keeps every upload in its cache; the archive has its own copy once ingested,
    # so Gradio's go after an hour (and all of them at a restart).
    with gr.Blocks(title="newsrag", delete_cache=(3600, 3600)) as ui:
        lang = say(gr.Radio(["中文", "English"], value="中文", label=TEXT["zh"]["language"], elem_id="lang"),
                   "language")
        say(gr.Markdown(f"## {TEXT['zh']['title']}"), "title", "h2")
        with gr.Tabs():
            _ask_tab(archive, say)
            _brief_tab(archive, say)
            _archive_tab(archive, ui, say)
        lang.change(say.switch, lang, [c for c, _, _ in say.items])
    return ui

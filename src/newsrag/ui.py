"""The Gradio web UI: Ask, Briefing, Archive. A thin shell over Archive.

Every word the page shows lives in TEXT, one entry per language; the language switch
redraws the labels and every view already on the page (an answer, the tables, the
charts) from it. Every handler catches its own errors and shows them in the page, in
Chinese and English, never as a stack trace.
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

# What an upload may hold: the loaders' own list, so a format they learn appears here too.
READABLE = sorted(SUFFIXES | {".zip"})

TEXT = {
    "zh": {
        "title": "新闻资料库问答", "ask_tab": "提问", "brief_tab": "简报", "archive_tab": "资料库",
        "question": "问题（简体或繁体）", "since": "起始日期 YYYY-MM-DD", "until": "结束日期 YYYY-MM-DD",
        "source": "来源（可选）", "ask": "提问", "answer": "回答", "sources": "引用来源", "recent": "最近的问题",
        "topic": "主题（可留空）", "generator": "生成方式", "make_brief": "生成简报",
        "download": "下载 Markdown", "upload": f"上传文件（{' '.join(READABLE)}）",
        "ingest": "导入", "results": "导入结果", "find": "按标题或 ID 查找", "articles": "文章列表",
        "delete_id": "要删除的文章 ID", "delete": "删除", "stats": "资料库统计", "refresh": "刷新",
        "language": "界面语言",
        "index": "资料库", "read_only": "只读：可以提问和生成简报，不能导入或删除。要导入自己的文章，请用 "
                                       "<code>python app.py --index indexes/news</code> 启动一个新的资料库。",
        "undated": "日期不详", "no_source": "来源不详", "event_date": "（文中所指 {date}）",
        "cite": "来源 {n}", "period": "按问题中的「{words}」限定为 {since} 至 {until}",
        "chart_day": "每日文章数（按主题）", "chart_week": "每周文章数（按主题；每根柱是从周一起的一周）",
        "x_day": "日期", "x_week": "周（周一）", "coverage": "每月文章数（按来源）", "month": "月份",
        "articles_axis": "文章数", "others": "其他",
        "deleted": "已删除", "summary": "新增 {added} 篇（其中近似重复 {duplicates} 篇），更新 {updated} 篇，"
                                       "跳过 {skipped} 篇，失败 {failed} 项；{chunks} 个片段（新嵌入 {embedded} 个），"
                                       "用时 {seconds:.1f} 秒",
        "result_cols": {"file": "文件", "status": "结果", "title": "标题", "reason": "原因"},
        "statuses": {"added": "新增", "updated": "更新", "skipped": "跳过", "duplicate": "近似重复", "failed": "失败"},
        "article_cols": {"id": "ID", "title": "标题", "date": "日期", "source": "来源", "canonical_id": "转载自"},
        "stat_keys": {
            "index": "资料库位置", "articles": "文章", "duplicates": "转载（近似重复）", "chunks": "片段",
            "undated": "无日期文章", "first_date": "最早日期", "last_date": "最晚日期", "sources": "来源",
            "embedder": "嵌入模型", "generator": "生成方式", "dim": "向量维数", "backend": "检索后端",
            "chunk_tokens": "片段长度（词元）", "chunk_overlap": "片段重叠（词元）", "generation": "提交版本"},
    },
    "en": {
        "title": "News archive Q&A", "ask_tab": "Ask", "brief_tab": "Briefing", "archive_tab": "Archive",
        "question": "Question (simplified or traditional Chinese)", "since": "From YYYY-MM-DD",
        "until": "To YYYY-MM-DD", "source": "Source (optional)", "ask": "Ask", "answer": "Answer",
        "sources": "Cited sources", "recent": "Recent questions", "topic": "Topic (optional)",
        "generator": "Generator", "make_brief": "Make briefing",
        "download": "Download Markdown", "upload": f"Upload files ({' '.join(READABLE)})",
        "ingest": "Ingest", "results": "Ingest results", "find": "Find by title or id", "articles": "Articles",
        "delete_id": "Article id to delete", "delete": "Delete", "stats": "Archive statistics",
        "refresh": "Refresh", "language": "Language",
        "index": "Index", "read_only": "Read-only: ask and make briefings, but not ingest or delete. To ingest "
                                       "your own articles, start a new index with "
                                       "<code>python app.py --index indexes/news</code>.",
        "undated": "undated", "no_source": "source unknown", "event_date": " (the text means {date})",
        "cite": "source {n}", "period": "limited to {since} – {until} by 「{words}」 in the question",
        "chart_day": "Articles per day, by theme", "chart_week": "Articles per week, by theme (weeks from Monday)",
        "x_day": "day", "x_week": "week (Monday)", "coverage": "Articles per month, by source", "month": "month",
        "articles_axis": "articles", "others": "others",
        "deleted": "Deleted", "summary": "{added} added ({duplicates} near-duplicate), {updated} updated, "
                                         "{skipped} skipped, {failed} failed; {chunks} chunks ({embedded} embedded) "
                                         "in {seconds:.1f} s",
        "result_cols": {"file": "file", "status": "status", "title": "title", "reason": "reason"},
        "statuses": {},
        "article_cols": {"id": "id", "title": "title", "date": "date", "source": "source",
                         "canonical_id": "duplicate of"},
        "stat_keys": {"first_date": "first date", "last_date": "last date", "dim": "dimensions",
                      "chunk_tokens": "chunk tokens", "chunk_overlap": "chunk overlap"},
    },
}

# Gradio's own words in the upload box follow the browser's language, not the switch above:
# they are said in both languages.
I18N = gr.I18n(**{locale: {"upload_text.drop_file": "拖放文件到此处 · Drop files here", "common.or": "或 · or",
                           "upload_text.click_to_upload": "点击选择文件 · Click to choose"}
                  for locale in ("en", "zh-CN")})

# Plain-language messages for the errors a user can cause or meet; anything else is shown
# by its one-line message, never with a traceback.
_KNOWN = [
    ("invalid date", "日期格式不对，请用 YYYY-MM-DD。", "The date is not valid; use YYYY-MM-DD."),
    ("is after until", "起始日期晚于结束日期。", "The start date is after the end date."),
    ("is read-only", "这个资料库是只读的：可以提问和生成简报，不能导入或删除。",
     "This index is read-only: it can be asked, not changed."),
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

# Ten distinct colours for the chart series (Vega's own palette repeats after ten); more
# series than that are folded into "others".
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
           "#bab0ac")

CSS = """
.nr-error {border:1px solid #d33; background:#fff3f3; color:#900; padding:10px 14px; border-radius:8px}
.nr-card {border:1px solid #ccd; border-radius:8px; padding:10px 14px; margin:8px 0; background:#fafbff}
.nr-card h4 {margin:0 0 4px 0; font-size:1em}
.nr-meta {color:#667; font-size:0.85em; margin-bottom:6px}
.nr-card mark {background:#ffe58a; padding:0 2px}
.nr-answer {font-size:1.05em; line-height:1.8}
.nr-answer a {text-decoration:none; font-weight:600}
.nr-index {color:#445; font-size:0.9em}
.nr-legend {display:flex; flex-wrap:wrap; gap:4px 16px; font-size:0.85em; padding:0 8px 6px}
.nr-legend i {display:inline-block; width:12px; height:12px; margin-right:5px; vertical-align:-1px; border-radius:2px}
.nr-stats {border-collapse:collapse; width:100%}
.nr-stats th, .nr-stats td {border-bottom:1px solid #e3e3ea; padding:4px 8px; text-align:left; vertical-align:top}
.nr-stats th {white-space:nowrap; font-weight:600}
.nr-stats td {overflow-wrap:anywhere}
"""


def texts(choice: str | None) -> dict:
    """The words of the language the switch shows (中文 or English)."""
    return TEXT["en" if choice == "English" else "zh"]


def notice(zh: str, en: str, detail: str = "") -> str:
    small = f"<br><small>{html.escape(detail)}</small>" if detail else ""
    return f'<div class="nr-error"><b>{html.escape(zh)}</b><br>{html.escape(en)}{small}</div>'


def error_box(e: BaseException) -> str:
    # A KeyError's str() is its repr ("'no such id'"): its message is its first argument.
    text = e.args[0] if isinstance(e, KeyError) and e.args else e
    msg = (str(text).splitlines() or [type(e).__name__])[0]
    for key, zh, en in _KNOWN:
        if key in msg:
            return notice(zh, en, msg)
    return notice("出错了：" + msg, "Error: " + msg)


def answer_html(answer, t: dict = TEXT["zh"]) -> str:
    """The answer with each [n] linked to its source card."""
    parts = []
    for s in answer.sentences:
        marks = "".join(f'<a href="#cite-{n}" title="{html.escape(t["cite"].format(n=n))}">[{n}]</a>'
                        for n in s.citations)
        text = html.escape(s.text)
        parts.append(f"{text}{marks}" if s.supported else f'<span title="unsupported">{text}[?]</span>')
    body = "".join(parts) or html.escape(answer.text)
    if answer.truncated:
        body += f'<span class="nr-meta">{html.escape(TRUNCATED_MARK)}</span>'
    period = ""
    if answer.period:
        period = f'<div class="nr-meta">{html.escape(t["period"].format(**answer.period))}</div>'
    return f'<div class="nr-answer">{body}</div>{period}'


def cards_html(archive: Archive, answer, t: dict = TEXT["zh"]) -> str:
    """One card per citation: title, date, source, and the quote highlighted in its context."""
    cards = []
    for c in answer.citations:
        art = archive.article(c.article_id) or {"text": c.quote}
        text = art["text"]
        a, b = max(0, c.start - 90), min(len(text), c.end + 90)
        context = (("…" if a else "") + html.escape(text[a:c.start]) + "<mark>" + html.escape(text[c.start:c.end])
                   + "</mark>" + html.escape(text[c.end:b]) + ("…" if b < len(text) else ""))
        when = c.date or t["undated"]
        if c.event_date and c.event_date != c.date:
            when += t["event_date"].format(date=c.event_date)
        cards.append(f'<div class="nr-card" id="cite-{c.n}"><h4>[{c.n}] {html.escape(c.title)}</h4>'
                     f'<div class="nr-meta">{html.escape(when)} · {html.escape(c.source or t["no_source"])} · '
                     f'<code>{html.escape(c.article_id)}</code></div>{context}</div>')
    return "".join(cards)


def index_html(archive: Archive, t: dict) -> str:
    """Which index the page is open on, and whether uploads can go into it."""
    line = f'{t["index"]}：<code>{html.escape(str(archive.root))}</code>'
    if archive.settings.read_only:
        line += f' · <b>{t["read_only"]}</b>'
    return f'<div class="nr-index" id="index-line">{line}</div>'


def stats_html(stats: dict, t: dict) -> str:
    """The statistics as a two-column table: the name of each figure, then its value."""
    rows = []
    for key, value in stats.items():
        if key == "sources":
            value = ", ".join(f"{t['no_source'] if s == '(unknown)' else s} ({n})" for s, n in value.items())
        shown = "-" if value is None or value == "" else value
        rows.append(f"<tr><th>{html.escape(t['stat_keys'].get(key, key))}</th><td>{html.escape(str(shown))}</td></tr>")
    return f'<table class="nr-stats">{"".join(rows)}</table>'


def period_chart(brief) -> tuple[pd.DataFrame, str]:
    """Articles per day (per week, from Monday, when the period is long), by theme; and
    that binning ("day" or "week"), which the chart's title and axis name."""
    rows = [{"date": e.date, "theme": f"{i}. {t.headline[:40]}", "articles": 1}
            for i, t in enumerate(brief.themes, 1) for e in t.timeline if e.date]
    df = pd.DataFrame(rows, columns=["date", "theme", "articles"])
    if df.empty:
        return df, "day"
    days = pd.to_datetime(df["date"])
    unit = "week" if (days.max() - days.min()).days > 45 else "day"
    if unit == "week":
        df["date"] = (days - pd.to_timedelta(days.dt.day_of_week, unit="D")).dt.strftime("%Y-%m-%d")
    return df.groupby(["date", "theme"], as_index=False)["articles"].sum(), unit


def bars(df: pd.DataFrame, x: str, color: str, others: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """``df`` summed per (x, series) with all but the largest series folded into ``others``
    when there are more than PALETTE has colours; and each series' colour, largest first."""
    totals = df.groupby(color, sort=True)["articles"].sum().sort_values(ascending=False, kind="stable")
    names = list(totals.index)
    if len(names) > len(PALETTE):
        names = names[:len(PALETTE) - 1] + [others]
        df = df.assign(**{color: df[color].where(df[color].isin(names), others)})
    return df.groupby([x, color], as_index=False)["articles"].sum(), dict(zip(names, PALETTE))


def chart(df: pd.DataFrame, x: str, color: str, title: str, x_title: str, t: dict) -> tuple:
    """The update of a bar plot of ``df`` and its legend: every series with its colour, in
    HTML that wraps (Vega's legend is cut off under a plot of fixed height). Nothing to
    chart hides the plot and empties the legend."""
    if df.empty:
        return gr.update(value=None, visible=False), ""
    df, colors = bars(df, x, color, t["others"])
    keys = "".join(f'<span class="nr-key"><i style="background:{c}"></i>{html.escape(name)}</span>'
                   for name, c in colors.items())
    return (gr.update(value=df, visible=True, label=title, x_title=x_title, y_title=t["articles_axis"],
                      color_map=colors), f'<div class="nr-legend">{keys}</div>')


def brief_chart(brief, t: dict) -> tuple:
    df, unit = period_chart(brief)
    return chart(df, "date", "theme", t[f"chart_{unit}"], t[f"x_{unit}"], t)


def report_html(report: IngestReport, t: dict) -> str:
    return f"<p>{html.escape(t['summary'].format(**vars(report)))}</p>"


def results_table(report: IngestReport, t: dict) -> pd.DataFrame:
    rows = [{"file": r.origin, "status": t["statuses"].get(r.status, r.status), "title": r.title, "reason": r.reason}
            for r in report.items]
    return pd.DataFrame(rows, columns=list(t["result_cols"])).rename(columns=t["result_cols"])


def articles_table(rows: list[dict], t: dict) -> pd.DataFrame:
    cols = t["article_cols"]
    return pd.DataFrame(rows or [dict.fromkeys(cols, "")], columns=list(cols)).rename(columns=cols)


def unreadable(names: list[str]) -> list[str]:
    """The files of an upload that no loader reads (and that are no zip)."""
    return [n for n in names if Path(n).suffix.lower() not in READABLE]


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


def generators(settings) -> list[tuple[str, str]]:
    """The generators a briefing may use: the extractive one and the one this server was
    started with, with the model and server its settings name. A kind with no model or
    server set could only fail, so it is not offered."""
    choices = [("extractive", "extractive")]
    if settings.generator != "extractive":
        where = " @ ".join(x for x in (settings.model, settings.base_url) if x)
        choices.insert(0, (f"{settings.generator} · {where}" if where else settings.generator, settings.generator))
    return choices


def _bar_plot(x: str, color: str, label: str, elem_id: str, **kw) -> tuple[gr.BarPlot, gr.HTML]:
    """A plot of articles per ``x`` stacked by ``color``, and below it its legend (see chart())."""
    plot = gr.BarPlot(x=x, y="articles", color=color, colors_in_legend=[], height=260, label=label, show_label=True,
                      elem_id=elem_id, **kw)
    return plot, gr.HTML(elem_id=f"{elem_id}-legend")


class _Labels:
    """The language registry: every component whose words follow the switch, with the TEXT
    key it shows, and every view drawn in the chosen language (redrawn when it changes)."""

    def __init__(self):
        self.items: list[tuple[object, str, str]] = []  # (component, key, how: label | value | h2 | h3)
        self.views: list[tuple] = []  # (draw(t, *inputs) -> outputs, inputs, outputs)

    def __call__(self, component, key: str, how: str = "label"):
        self.items.append((component, key, how))
        return component

    def view(self, draw, inputs: list, outputs: list) -> None:
        self.views.append((draw, inputs, outputs))

    def switch(self, choice: str) -> list:
        t = texts(choice)
        form = {"label": lambda k: gr.update(label=t[k]), "value": lambda k: gr.update(value=t[k]),
                "h2": lambda k: f"## {t[k]}", "h3": lambda k: f"### {t[k]}"}
        return [form[how](key) for _, key, how in self.items]

    def connect(self, lang: gr.Radio) -> None:
        lang.change(self.switch, lang, [c for c, _, _ in self.items])
        for draw, inputs, outputs in self.views:
            lang.change(lambda choice, *args, draw=draw: draw(texts(choice), *args), [lang, *inputs], outputs)


def _ask_tab(archive: Archive, say: _Labels, lang: gr.Radio) -> gr.Dropdown:
    """The Ask tab; returns its source filter, which the Archive tab keeps up to date."""
    zh = TEXT["zh"]

    def ask(question, since, until, source, recent, choice):
        t, recent = texts(choice), list(recent or [])
        if not (question or "").strip():
            yield notice("请输入问题。", "Please type a question."), "", recent, gr.update(), None
            return
        try:
            written, answer = "", None
            for piece in archive.ask_stream(question, since=since or None, until=until or None,
                                            source=source or None):
                if isinstance(piece, str):
                    written += piece
                    yield f'<div class="nr-answer">{html.escape(written)}</div>', "", recent, gr.update(), None
                else:
                    answer = piece
            if question not in recent:
                recent = [question] + recent[:9]
            yield answer_html(answer, t), cards_html(archive, answer, t), recent, gr.update(choices=recent), answer
        except Exception as e:  # shown in the page, not raised into Gradio's generic error
            yield error_box(e), "", recent, gr.update(), None

    def redraw(t, shown):
        return (answer_html(shown, t), cards_html(archive, shown, t)) if shown else (gr.update(), gr.update())

    with say(gr.Tab(zh["ask_tab"]), "ask_tab"):
        recent_state, shown = gr.State([]), gr.State(None)
        with gr.Row():
            question = say(gr.Textbox(label=zh["question"], scale=4, elem_id="question",
                                      placeholder="會議關於人才政策作了什麼決定？"), "question")
            ask_btn = say(gr.Button(zh["ask"], variant="primary", scale=1, elem_id="ask"), "ask", "value")
        with gr.Row():
            since = say(gr.Textbox(label=zh["since"], elem_id="ask-since"), "since")
            until = say(gr.Textbox(label=zh["until"], elem_id="ask-until"), "until")
            source = say(gr.Dropdown([], value=None, label=zh["source"], allow_custom_value=True,
                                     elem_id="ask-source"), "source")
            recent = say(gr.Dropdown([], label=zh["recent"], allow_custom_value=True), "recent")
        with gr.Row():
            with gr.Column(scale=3):
                say(gr.Markdown(f"### {zh['answer']}"), "answer", "h3")
                answer = gr.HTML(elem_id="answer")
            with gr.Column(scale=2):
                say(gr.Markdown(f"### {zh['sources']}"), "sources", "h3")
                cards = gr.HTML(elem_id="sources")
    inputs, outputs = [question, since, until, source, recent_state, lang], [answer, cards, recent_state, recent, shown]
    ask_btn.click(ask, inputs, outputs)
    question.submit(ask, inputs, outputs)
    recent.select(lambda q: q, recent, question)
    say.view(redraw, [shown], [answer, cards])
    return source


def _brief_tab(archive: Archive, say: _Labels, lang: gr.Radio) -> None:
    zh, choices = TEXT["zh"], generators(archive.settings)

    def make_brief(topic, since, until, generator, choice, progress=gr.Progress()):
        try:
            chosen = archive if generator == archive.settings.generator else archive.using(generator=generator)
            brief = chosen.brief(topic or "", since=since or None, until=until or None,
                                 progress=lambda done, total, note: progress((done, total), desc=note))
            md = brief.to_markdown()
            path = Path(tempfile.mkdtemp(prefix="newsrag-brief-")) / "briefing.md"
            path.write_text(md, encoding="utf-8")
            return md, gr.update(value=str(path), visible=True), *brief_chart(brief, texts(choice)), "", brief
        except Exception as e:
            return "", gr.update(visible=False), gr.update(visible=False), "", error_box(e), None

    with say(gr.Tab(zh["brief_tab"]), "brief_tab"):
        with gr.Row():
            topic = say(gr.Textbox(label=zh["topic"], elem_id="topic"), "topic")
            since = say(gr.Textbox(label=zh["since"], elem_id="brief-since"), "since")
            until = say(gr.Textbox(label=zh["until"], elem_id="brief-until"), "until")
            generator = say(gr.Radio(choices, value=choices[0][1], label=zh["generator"], visible=len(choices) > 1,
                                     elem_id="generator"), "generator")
        brief_btn = say(gr.Button(zh["make_brief"], variant="primary", elem_id="make-brief"), "make_brief", "value")
        brief_error = gr.HTML(elem_id="brief-error")
        plot, legend = _bar_plot("date", "theme", zh["chart_day"], "brief-chart", visible=False)
        download = say(gr.File(label=zh["download"], visible=False), "download")
        brief_md = gr.Markdown(elem_id="brief")
        shown = gr.State(None)
    brief_btn.click(make_brief, [topic, since, until, generator, lang], [brief_md, download, plot, legend,
                                                                        brief_error, shown])
    say.view(lambda t, brief: brief_chart(brief, t) if brief else (gr.update(), gr.update()), [shown],
             [plot, legend])


def _archive_tab(archive: Archive, ui: gr.Blocks, say: _Labels, lang: gr.Radio, source_filter: gr.Dropdown) -> None:
    zh, writable = TEXT["zh"], not archive.settings.read_only

    def draw(query, t):
        stats = archive.stats()
        coverage = pd.DataFrame(archive.coverage(), columns=["month", "source", "articles"])
        coverage["source"] = coverage["source"].replace("", t["no_source"])
        return (articles_table(archive.list_articles(query or ""), t), stats_html(stats, t),
                *chart(coverage, "month", "source", t["coverage"], t["month"], t),
                gr.update(choices=[s for s in stats["sources"] if s != "(unknown)"]))

    def refresh(query, choice):
        return draw(query, texts(choice))

    def check(files):
        bad = unreadable([Path(str(getattr(f, "name", f))).name for f in files or []])
        if not bad:
            return ""
        return notice(f"不能读取 {'、'.join(bad)}：可以导入的文件是 {' '.join(READABLE)}。",
                      f"Cannot read {', '.join(bad)}: the files that can be ingested are {' '.join(READABLE)}.")

    def ingest(files, query, choice, progress=gr.Progress()):
        t = texts(choice)
        if not files:
            return gr.update(visible=False), notice("请先选择文件。", "Choose files first."), None, *draw(query, t)
        try:
            report = ingest_uploads(archive, ui, files, lambda d, n, note: progress((d, n), desc=t["ingest"]))
            return (gr.update(value=results_table(report, t), visible=True), report_html(report, t), report,
                    *draw(query, t))
        except Exception as e:  # an UploadError too: its message is its one-line detail
            return gr.update(visible=False), error_box(e), None, *draw(query, t)

    def delete(article_id, query, choice):
        aid = (article_id or "").strip()
        try:
            if not aid:
                msg = notice("请输入要删除的文章 ID。", "Type the id of the article to delete.")
            elif archive.article(aid) is None:
                msg = notice(f"没有 ID 为 {aid} 的文章。", f"There is no article with id {aid}.")
            else:
                archive.delete(aid)
                msg = f"<p>{texts(choice)['deleted']} <code>{html.escape(aid)}</code></p>"
        except Exception as e:
            msg = error_box(e)
        return msg, gr.update(visible=False), None, *refresh(query, choice)  # the last ingest's results go

    def redraw(t, query, report):
        done = (gr.update(value=results_table(report, t)), report_html(report, t)) if report else (gr.update(),) * 2
        return *done, *draw(query, t)

    with say(gr.Tab(zh["archive_tab"]), "archive_tab"):
        with gr.Row(visible=writable):
            files = say(gr.File(label=zh["upload"], file_count="multiple", elem_id="upload"), "upload")
            ingest_btn = say(gr.Button(zh["ingest"], variant="primary", elem_id="ingest"), "ingest", "value")
        ingest_msg = gr.HTML(elem_id="ingest-msg")
        results = say(gr.Dataframe(label=zh["results"], interactive=False, visible=False, elem_id="ingest-results"),
                      "results")
        with gr.Row():
            find = say(gr.Textbox(label=zh["find"], elem_id="find"), "find")
            refresh_btn = say(gr.Button(zh["refresh"], elem_id="refresh"), "refresh", "value")
            delete_id = say(gr.Textbox(label=zh["delete_id"], visible=writable, elem_id="delete-id"), "delete_id")
            delete_btn = say(gr.Button(zh["delete"], variant="stop", visible=writable, elem_id="delete"),
                             "delete", "value")
        articles = say(gr.Dataframe(label=zh["articles"], interactive=False, elem_id="articles"), "articles")
        with gr.Row():
            with gr.Column():
                say(gr.Markdown(f"### {zh['stats']}"), "stats", "h3")
                stats = gr.HTML(elem_id="stats")
            with gr.Column():
                coverage, legend = _bar_plot("month", "source", zh["coverage"], "coverage")
        report = gr.State(None)
    shown = [articles, stats, coverage, legend, source_filter]
    files.upload(check, files, ingest_msg)
    ingest_btn.click(ingest, [files, find, lang], [results, ingest_msg, report, *shown])
    refresh_btn.click(refresh, [find, lang], shown)
    find.submit(refresh, [find, lang], shown)
    delete_btn.click(delete, [delete_id, find, lang], [ingest_msg, results, report, *shown])
    ui.load(refresh, [find, lang], shown)
    say.view(redraw, [find, report], [results, ingest_msg, *shown])


def build_ui(archive: Archive) -> gr.Blocks:
    """Three tabs over ``archive`` (Ask, Briefing, Archive), in Chinese or English."""
    say = _Labels()
    # Gradio keeps every upload in its cache; the archive has its own copy once ingested,
    # so Gradio's go after an hour (and all of them at a restart).
    with gr.Blocks(title="newsrag", delete_cache=(3600, 3600)) as ui:
        lang = say(gr.Radio(["中文", "English"], value="中文", label=TEXT["zh"]["language"], elem_id="lang"),
                   "language")
        say(gr.Markdown(f"## {TEXT['zh']['title']}"), "title", "h2")
        index = gr.HTML(index_html(archive, TEXT["zh"]), elem_id="index-info")
        say.view(lambda t: index_html(archive, t), [], [index])
        with gr.Tabs():
            source_filter = _ask_tab(archive, say, lang)
            _brief_tab(archive, say, lang)
            _archive_tab(archive, ui, say, lang, source_filter)
        say.connect(lang)
    return ui

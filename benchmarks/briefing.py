"""Briefing benchmark: one month of the cctv_xwlb_2024 archive, timed, and checked:
every summary sentence and timeline line cited, no two lines from near-duplicates.

    python benchmarks/briefing.py [--since 2024-03-01 --until 2024-03-31] [--topic …]

Uses the index benchmarks/retrieval.py built (it holds the cctv articles), else
builds one from the cctv articles alone. The Markdown goes to benchmarks/out/.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from newsrag import Archive  # noqa: E402
from retrieval import read_jsonl  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--index", default=str(ROOT / "benchmarks" / "out" / "retrieval-index"))
    ap.add_argument("--since", default="2024-03-01")
    ap.add_argument("--until", default="2024-03-31")
    ap.add_argument("--topic", default="")
    args = ap.parse_args()
    archive = Archive.open(args.index)
    if not archive.stats()["articles"]:
        recs = [{k: a.get(k) for k in ("id", "title", "date", "source", "url", "text")}
                for a in read_jsonl(Path(args.data) / "cctv_xwlb_2024" / "articles.jsonl")]
        print(archive.ingest(recs, progress=True).summary())

    t0 = time.perf_counter()
    brief = archive.brief(args.topic, since=args.since, until=args.until, progress=True)
    seconds = time.perf_counter() - t0
    out = ROOT / "benchmarks" / "out" / f"briefing-{args.since}-{args.until}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(brief.to_markdown(), encoding="utf-8")

    cited = {c.n: c for c in brief.citations}
    summary_lines = [s for t in brief.themes for s in t.summary.split("]") if s.strip()]
    uncited = sum(1 for t in brief.themes for s in t.summary.split("[?]")[:-1])
    lines = [e for t in brief.themes for e in t.timeline]
    articles = [cited[e.citation].article_id for e in lines]
    dup_pairs = 0
    for aid in set(articles):
        row = archive.store.article(aid)
        if row["canonical_id"] and row["canonical_id"] in articles:
            dup_pairs += 1
    print(f"\nbriefing {args.since} .. {args.until}{' on ' + args.topic if args.topic else ''}: "
          f"{brief.articles} articles ({brief.duplicates_folded} near-duplicates folded), "
          f"{len(brief.themes)} themes, {len(lines)} timeline lines, {len(brief.citations)} citations")
    print(f"time: {seconds:.1f} s (target < 60 s)")
    print(f"summary sentences: {len(summary_lines)}, without a source: {uncited}")
    print(f"timeline lines without a citation: {sum(1 for e in lines if e.citation not in cited)}; "
          f"lines from near-duplicate pairs: {dup_pairs}; articles on two lines: {len(articles) - len(set(articles))}")
    print(f"markdown: {out}")
    return 0 if seconds < 60 and not uncited and not dup_pairs else 1


if __name__ == "__main__":
    sys.exit(main())

"""Briefing benchmark: one month of the cctv_xwlb_2024 archive, briefed by each clustering
method in the same run, timed and checked (every summary sentence and timeline line cited,
no two lines from near-duplicates), with how well the themes hold together:

- coherence: over the articles in a theme, the mean share of their theme's top 3 keywords
  they contain (briefing.coherence); stories under 「其他」 do not count, so the share of
  articles placed in a theme is printed beside it;
- agreement with benchmarks/briefing_labels.json (themes of March 2024 labelled by hand from
  the headlines alone): BCubed precision (a theme holds one story), recall (a story is kept
  together) and F1 over the labelled articles; an article under 「其他」 counts as alone.

``kmeans`` is the previous clustering (k-means on the article vectors, every article in a
theme), ``agglomerative`` the current default.

    python benchmarks/briefing.py [--since 2024-03-01 --until 2024-03-31] [--topic …]

Uses the index benchmarks/retrieval.py built (it holds the cctv articles), else builds one
from the cctv articles of the period alone. The Markdown goes to benchmarks/out/.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from newsrag import Archive  # noqa: E402
from newsrag.briefing import METHODS  # noqa: E402
from retrieval import read_jsonl  # noqa: E402

LABELS = ROOT / "benchmarks" / "briefing_labels.json"


def bcubed(groups: list[list[str]], gold: dict[str, str]) -> tuple[float, float, float]:
    """BCubed precision, recall and F1 of ``groups`` (lists of article ids) over the labelled ids."""
    where = {aid: i for i, g in enumerate(groups) for aid in g}
    items = [aid for aid in where if aid in gold]
    if not items:
        return 0.0, 0.0, 0.0
    p = r = 0.0
    for aid in items:
        same_group = {b for b in items if where[b] == where[aid]}
        same_label = {b for b in items if gold[b] == gold[aid]}
        both = len(same_group & same_label)
        p += both / len(same_group)
        r += both / len(same_label)
    p, r = p / len(items), r / len(items)
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def checks(archive: Archive, brief) -> tuple[int, int, int, int]:
    """(uncited summary sentences, timeline lines without a citation, lines from near-duplicate
    pairs, articles on two lines)."""
    cited = {c.n: c for c in brief.citations}
    uncited = sum(len(t.summary.split("[?]")) - 1 for t in brief.themes)
    lines = [e for t in brief.themes for e in t.timeline]
    articles = [cited[e.citation].article_id for e in lines if e.citation in cited]
    dup_pairs = 0
    for aid in set(articles):
        row = archive.store.article(aid)
        if row["canonical_id"] and row["canonical_id"] in articles:
            dup_pairs += 1
    return uncited, sum(1 for e in lines if e.citation not in cited), dup_pairs, len(articles) - len(set(articles))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--index", default=str(ROOT / "benchmarks" / "out" / "retrieval-index"))
    ap.add_argument("--since", default="2024-03-01")
    ap.add_argument("--until", default="2024-03-31")
    ap.add_argument("--topic", default="")
    ap.add_argument("--methods", default=",".join(reversed(METHODS)), help="clusterings to compare")
    args = ap.parse_args()
    archive = Archive.open(args.index)
    if not archive.stats()["articles"]:
        recs = [{k: a.get(k) for k in ("id", "title", "date", "source", "url", "text")}
                for a in read_jsonl(Path(args.data) / "cctv_xwlb_2024" / "articles.jsonl")
                if args.since <= a["date"] <= args.until]
        print(archive.ingest(recs, progress=True).summary())
    gold = json.loads(LABELS.read_text(encoding="utf-8"))["labels"]

    failed = False
    rows, briefed = [], set()
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        brief = archive.brief(args.topic, since=args.since, until=args.until, method=method)
        seconds = time.perf_counter() - t0
        out = ROOT / "benchmarks" / "out" / f"briefing-{args.since}-{args.until}-{method}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(brief.to_markdown(), encoding="utf-8")
        uncited, unlinked, dup_pairs, twice = checks(archive, brief)
        groups = [[aid] for t in brief.themes if t.other for aid in t.article_ids]
        groups += [t.article_ids for t in brief.themes if not t.other]
        p, r, f = bcubed(groups, gold)
        briefed.update(aid for g in groups for aid in g)
        placed = sum(len(t.article_ids) for t in brief.themes if not t.other) / max(brief.articles, 1)
        print(f"\n== {method}: {brief.articles} articles ({brief.duplicates_folded} near-duplicates folded), "
              f"{len(brief.themes)} themes, {len(brief.citations)} citations, {seconds:.1f} s; {out.name}")
        for i, t in enumerate(brief.themes, 1):
            print(f"  {i:>2}. [{len(t.article_ids):>3}] {t.headline[:40]}  | {'、'.join(t.keywords)}")
        print(f"  uncited summary sentences {uncited}, timeline lines without a citation {unlinked}, "
              f"lines from near-duplicate pairs {dup_pairs}, articles on two lines {twice}")
        rows.append((method, len(brief.themes), placed, brief.coherence or 0.0, p, r, f, seconds))
        failed |= seconds >= 60 or bool(uncited) or bool(dup_pairs)

    print(f"\nbriefing {args.since} .. {args.until}{' on ' + args.topic if args.topic else ''}; "
          f"{len(briefed & set(gold))} of its articles labelled in {LABELS.name}")
    print(f"{'method':<15}{'themes':>7}{'in a theme':>11}{'coherence':>10}{'B3 prec':>9}{'B3 rec':>8}{'B3 F1':>7}"
          f"{'seconds':>9}")
    for method, n, placed, coh, p, r, f, seconds in rows:
        print(f"{method:<15}{n:>7}{placed:>11.2f}{coh:>10.3f}{p:>9.3f}{r:>8.3f}{f:>7.3f}{seconds:>9.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

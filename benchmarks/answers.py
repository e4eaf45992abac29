"""Answer benchmark on news QA: does the gold answer appear in newsrag's answer?

Archive: the antiterror_news_mrc passages plus the 1,815 cctv_xwlb_2024 articles.
Baseline, in the same run: the first 150 characters of the top search hit.

    python benchmarks/answers.py [--data ../shared/data] [--questions N]

When benchmarks/retrieval.py has built its index, this one starts from a copy
of it (minus the other QA sets) instead of embedding everything again.
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from newsrag import Archive  # noqa: E402
from retrieval import percentile, read_jsonl  # noqa: E402


def build(data: Path, index: Path) -> Archive:
    source = ROOT / "benchmarks" / "out" / "retrieval-index"
    if not index.exists() and (source / "manifest.json").exists():
        shutil.copytree(source, index)
        with Archive.open(index) as a:
            others = [r[0] for r in a.store.db.execute(
                "SELECT id FROM articles WHERE id LIKE 'drcd-%' OR id LIKE 'cmrc2018-%'")]
            if others:
                a.delete(*others)
    archive = Archive.open(index)
    recs = [{"id": p["passage_id"], "title": p.get("title", ""), "text": p["context"]}
            for p in read_jsonl(data / "antiterror_news_mrc" / "passages.jsonl")]
    recs += [{k: a.get(k) for k in ("id", "title", "date", "source", "url", "text")}
             for a in read_jsonl(data / "cctv_xwlb_2024" / "articles.jsonl")]
    report = archive.ingest(recs, progress=True)
    print(f"archive: {report.summary()}")
    return archive


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--index", default=str(ROOT / "benchmarks" / "out" / "answers-index"))
    ap.add_argument("--questions", type=int, default=0, help="questions to ask (0: all 1,604)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=0, help="print this many answers")
    args = ap.parse_args()
    data = Path(args.data)
    archive = build(data, Path(args.index))

    qs = read_jsonl(data / "antiterror_news_mrc" / "qa.jsonl")
    if args.questions and len(qs) > args.questions:
        qs = random.Random(args.seed).sample(qs, args.questions)
    rows = {"newsrag (extractive)": [], "baseline: top hit, first 150 chars": []}
    latencies = {k: [] for k in rows}
    for i, q in enumerate(qs):
        t0 = time.perf_counter()
        ans = archive.ask(q["question"])
        latencies["newsrag (extractive)"].append(time.perf_counter() - t0)
        text = "".join(s.text for s in ans.sentences) if ans.sentences else ans.text
        rows["newsrag (extractive)"].append((any(g in text for g in q["answers"]), len(text)))
        t0 = time.perf_counter()
        hits = archive.search(q["question"], k=1)
        base = hits[0].text[:150] if hits else ""
        latencies["baseline: top hit, first 150 chars"].append(time.perf_counter() - t0)
        rows["baseline: top hit, first 150 chars"].append((any(g in base for g in q["answers"]), len(base)))
        if i < args.show:
            print(f"\nQ: {q['question']}  gold: {q['answers']}\nA: {ans.text}")
    print(f"\n{len(qs)} questions from antiterror_news_mrc\n")
    print(f"{'system':<38}{'hit rate':>9}{'median chars':>14}{'p50 ms':>9}{'p95 ms':>9}")
    for name, r in rows.items():
        lat = latencies[name]
        print(f"{name:<38}{sum(h for h, _ in r) / len(r):>9.3f}{statistics.median(n for _, n in r):>14.0f}"
              f"{statistics.median(lat) * 1000:>9.0f}{percentile(lat, 0.95) * 1000:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

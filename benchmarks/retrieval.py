"""Retrieval benchmark: hybrid vs BM25-only vs dense-only over one index.

The archive is the QA passages of drcd (traditional), cmrc2018 and
antiterror_news_mrc (simplified) ingested as articles, plus the 1,815
cctv_xwlb_2024 news articles as distractors. A question scores when its gold
passage (or a near-duplicate folded into it) is among the hits.

    python benchmarks/retrieval.py [--data ../shared/data] [--questions N] [--rerank MODEL]

With --rerank, hybrid search is also run with that cross-encoder re-ordering its top
candidates (rerank.DEPTH), and its quality and latency are printed beside plain hybrid's.

The index is kept in benchmarks/out/ so a re-run skips the embedding; the
throughput of the build that made it is saved beside it and printed again.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from newsrag import Archive  # noqa: E402

SETS = ("drcd", "cmrc2018", "antiterror_news_mrc")
MODES = ("hybrid", "bm25", "dense")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def records(data: Path) -> list[dict]:
    out = []
    for name in SETS:
        for p in read_jsonl(data / name / "passages.jsonl"):
            out.append({"id": p["passage_id"], "title": p.get("title", ""), "text": p["context"],
                        "source": name})
    for a in read_jsonl(data / "cctv_xwlb_2024" / "articles.jsonl"):
        out.append({k: a.get(k) for k in ("id", "title", "date", "source", "url", "text")})
    return out


def backend_copy(index: Path, backend: str) -> str:
    """The local index's truth (SQLite, manifest) under another backend; its structures replay on open."""
    dst = index.with_name(f"{index.name}-{backend}")
    if not (dst / "manifest.json").exists():
        dst.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(index / "archive.sqlite3") as src, sqlite3.connect(dst / "archive.sqlite3") as out:
            src.backup(out)  # with whatever the WAL still holds
        if (index / "benchmark-build.json").exists():
            shutil.copy2(index / "benchmark-build.json", dst)
        manifest = json.loads((index / "manifest.json").read_text())
        (dst / "manifest.json").write_text(json.dumps(dict(manifest, backend=backend)))
    return str(dst)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--index", default=str(ROOT / "benchmarks" / "out" / "retrieval-index"))
    ap.add_argument("--questions", type=int, default=0, help="questions per set (default 0: all)")
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--backend", default="local", choices=("local", "milvus"),
                    help="milvus: a copy of the local index whose search structures are replayed into Milvus Lite "
                         "from its SQLite (nothing is embedded again)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rerank", metavar="MODEL", help="also hybrid + this CrossEncoder (id or folder)")
    args = ap.parse_args()
    data = Path(args.data)

    if args.backend != "local":
        args.index = backend_copy(Path(args.index), args.backend)
    archive = Archive.open(args.index, embedder=args.embedder)
    fresh = archive.stats()["articles"] == 0
    recs = records(data)
    report = archive.ingest(recs, progress=True)
    build_file = Path(args.index) / "benchmark-build.json"
    if fresh:  # only a build from nothing measures ingest throughput
        build = {"articles": report.added, "chunks": report.chunks, "seconds": round(report.seconds, 1)}
        build_file.write_text(json.dumps(build))
    build = json.loads(build_file.read_text()) if build_file.exists() else None
    stats = archive.stats()
    print(f"\narchive: {stats['articles']} articles ({stats['duplicates']} near-duplicates), "
          f"{stats['chunks']} chunks, embedder {stats['embedder']}, chunk {stats['chunk_tokens']} tokens")
    if build:
        print(f"ingest (the build that made this index): {build['articles']} articles, {build['chunks']} chunks "
              f"in {build['seconds']:.0f} s = {build['articles'] / build['seconds']:.2f} articles/s, "
              f"{build['chunks'] / build['seconds']:.2f} chunks/s")
    print(f"this run's ingest: {report.summary()}")
    for line in report.errors:
        print(f"  ingest error: {line}")

    # (label, archive, search mode): reranking is hybrid search with a cross-encoder after it
    runs = [(mode, archive, mode) for mode in MODES]
    if args.rerank:
        reranking = archive.using(rerank=args.rerank)
        t0 = time.perf_counter()
        reranking.reranker.load()
        print(f"reranker {reranking.reranker.name} loaded in {time.perf_counter() - t0:.1f} s")
        runs.insert(1, ("hybrid+rerank", reranking, "hybrid"))
    rng = random.Random(args.seed)
    header = f"{'set':<22}{'mode':<15}{'n':>6}{'R@1':>8}{'R@5':>8}{'R@20':>8}{'MRR@10':>9}"
    print("\n" + header + "\n" + "-" * len(header))
    latencies: dict[str, list[float]] = {"hybrid": [], "hybrid+rerank": []}
    wins = True
    for name in SETS:
        qs = read_jsonl(data / name / "qa.jsonl")
        if args.questions and len(qs) > args.questions:
            qs = rng.sample(qs, args.questions)
        results = {}
        for label, searcher, mode in runs:
            ranks = []
            for q in qs:
                t0 = time.perf_counter()
                hits = searcher.search(q["question"], k=20, mode=mode)
                if label in latencies:
                    latencies[label].append(time.perf_counter() - t0)
                gold = q["passage_id"]
                rank = next((i for i, h in enumerate(hits, 1) if h.article_id == gold or gold in h.duplicates), None)
                ranks.append(rank)
            n = len(ranks)
            r = {
                "R@1": sum(1 for x in ranks if x and x <= 1) / n,
                "R@5": sum(1 for x in ranks if x and x <= 5) / n,
                "R@20": sum(1 for x in ranks if x and x <= 20) / n,
                "MRR@10": sum(1 / x for x in ranks if x and x <= 10) / n,
            }
            results[label] = r
            print(f"{name:<22}{label:<15}{n:>6}" + "".join(f"{r[m]:>8.3f}" for m in ("R@1", "R@5", "R@20"))
                  + f"{r['MRR@10']:>9.3f}", flush=True)
        beats = all(results["hybrid"]["MRR@10"] > results[m]["MRR@10"] for m in ("bm25", "dense"))
        wins &= beats
        print(f"{'':<22}hybrid beats both on MRR@10: {'yes' if beats else 'NO'}")
        if args.rerank:
            delta = results["hybrid+rerank"]["MRR@10"] - results["hybrid"]["MRR@10"]
            print(f"{'':<22}reranking changes MRR@10 by {delta:+.3f}")
    print()
    for label, times in latencies.items():
        if times:
            print(f"{label} search latency over {len(times)} queries: p50 {statistics.median(times) * 1000:.0f} ms, "
                  f"p95 {percentile(times, 0.95) * 1000:.0f} ms")
    return 0 if wins else 1


if __name__ == "__main__":
    sys.exit(main())

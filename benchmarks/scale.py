"""Scale benchmark: how the index behaves as the archive grows, beside the previous design.

A synthetic archive (real sentences from ../shared/data shuffled into dated
articles) is ingested through the product with a fast, deterministic stand-in
embedder passed as ``Archive.open(..., embedder=...)``, so embedding time is
left out. For each size it prints: build throughput, the time and peak RSS of
adding 10 articles to the built index (a fresh process), cold open, search
p50/p95 per mode, recall@10 of the dense ANN against exact search, disk size.
The previous design (the commit given by --baseline, run from a `git archive`
of it) is measured beside it at the sizes given by --baseline-sizes.

    python benchmarks/scale.py --sizes 10000,100000 [--baseline-sizes 10000]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
DIM = 384
SOURCES = ["新华社", "人民日报", "央视新闻", "臨江日報", "光明日报", "经济日报", "中国新闻网", "澎湃新闻",
           "南方日报", "北京日报", "解放日报", "文汇报", "新京报", "大公報", "明報", "聯合報"]


class StandIn:
    """Character-bigram hashing into 384 signed buckets: deterministic, fast, and text-like in its
    neighbourhoods (texts sharing words are near), unlike random vectors."""

    name, dim, max_tokens = "standin-bigram-384", DIM, 512

    def count_tokens(self, text: str) -> int:
        return len(text) + 2

    def _vec(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        v = np.zeros(DIM, np.float32)
        if len(codes) > 1:
            h = (codes[:-1] * np.uint64(1_000_003) + codes[1:]) * np.uint64(0x9E3779B97F4A7C15)
            h >>= np.uint64(40)
            np.add.at(v, (h % np.uint64(DIM)).astype(np.int64), np.where(h & np.uint64(1 << 16), 1.0, -1.0))
        n = float(np.linalg.norm(v))
        return v / n if n else v

    def embed_passages(self, texts):
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)

    def embed_query(self, text):
        return self._vec(text)


def sentences(data: Path, limit: int = 200_000) -> list[str]:
    out: list[str] = []
    split = re.compile(r"(?<=[。！？])")
    for path in [data / "cctv_xwlb_2024" / "articles.jsonl"] + [data / s / "passages.jsonl" for s in
                                                               ("cmrc2018", "drcd", "antiterror_news_mrc")]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                for s in split.split(rec.get("text") or rec.get("context") or ""):
                    s = s.strip()
                    if 12 <= len(s) <= 200:
                        out.append(s)
    return out[:limit]


def articles(pool: list[str], n: int, seed: int, prefix: str) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        body = "".join(rng.choice(pool) for _ in range(rng.randint(8, 16)))
        y, m, d = rng.randint(2015, 2024), rng.randint(1, 12), rng.randint(1, 28)
        out.append({"id": f"{prefix}{i}", "title": rng.choice(pool)[:24], "date": f"{y}-{m:02d}-{d:02d}",
                    "source": rng.choice(SOURCES), "text": body})
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2 ** 20


# ---------------------------------------------------------------- work done in a child process

def child(task: str, design: str, index: str, payload: str, backend: str = "local",
          milvus_uri: str | None = None) -> dict:
    if design == "old":
        sys.path.insert(0, str(OUT / "baseline-src"))
        import newsrag.archive as old

        old.make_embedder = lambda *a, **k: StandIn()  # the old door took no embedder object
        open_ = lambda: old.Archive.open(index, embedder=StandIn.name)  # noqa: E731
    else:
        sys.path.insert(0, str(ROOT / "src"))
        from newsrag import Archive

        open_ = lambda: Archive.open(index, embedder=StandIn(), backend=backend,  # noqa: E731
                                     milvus_uri=milvus_uri)
    t0 = time.perf_counter()
    archive = open_()
    if task == "build":  # a JSONL export, streamed by the product's own loader
        report = archive.ingest([payload] if payload.endswith(".jsonl")
                                else json.loads(Path(payload).read_text(encoding="utf-8")))
        return {"seconds": time.perf_counter() - t0, "chunks": report.chunks, "articles": report.added,
                "rss_mb": rss_mb()}
    if task == "add":
        report = archive.ingest(json.loads(payload))
        return {"seconds": time.perf_counter() - t0, "added": report.added, "rss_mb": rss_mb()}
    if task == "search":
        queries = json.loads(payload)
        archive.search(queries[0], k=10)  # the cold open: load the structures once
        cold = time.perf_counter() - t0
        lat = {}
        for mode in ("hybrid", "bm25", "dense"):
            times = []
            for q in queries:
                t = time.perf_counter()
                archive.search(q, k=10, mode=mode)
                times.append(time.perf_counter() - t)
            lat[mode] = (float(np.percentile(times, 50)) * 1000, float(np.percentile(times, 95)) * 1000)
        filtered = []
        for q in queries[:50]:
            t = time.perf_counter()
            archive.search(q, k=10, since="2019-03-01", until="2019-03-31")
            filtered.append(time.perf_counter() - t)
        lat["hybrid, one month"] = (float(np.percentile(filtered, 50)) * 1000,
                                    float(np.percentile(filtered, 95)) * 1000)
        out = {"cold_open_s": cold, "latency_ms": lat, "rss_mb": rss_mb()}
        if design == "new":
            exact = exact_top10(archive, queries)
            out["recall@10"] = recall(archive, queries, exact)
            if backend == "local":  # the efSearch of the local FAISS segments
                out["by_ef"] = ef_sweep(archive, queries, exact)
        return out
    raise ValueError(task)


def exact_top10(archive, queries: list[str]) -> list[set]:
    """Each query's exact dense top-10 over every chunk in SQLite (computed once per run)."""
    from newsrag.text import normalize

    db = archive.store.db
    ids = np.fromiter((r[0] for r in db.execute("SELECT id FROM chunks ORDER BY id")), np.int64)
    vecs = np.frombuffer(b"".join(r[0] for r in db.execute("SELECT vector FROM chunks ORDER BY id")),
                         np.float32).reshape(len(ids), -1)
    qv = np.stack([archive.embedder.embed_query(normalize(q)) for q in queries])
    return [set(ids[np.argsort(-(vecs @ v))[:10]]) for v in qv]


def recall(archive, queries: list[str], exact: list[set]) -> float:
    """Dense top-10 of the index (ANN where segments are large) against exact search."""
    from newsrag.index.base import Query
    from newsrag.text import normalize

    dense = next(i for i in archive.indexes if i.kind == "dense")
    hits = sum(len(top & set(dense.search(Query("", [], archive.embedder.embed_query(normalize(q))), 10).ids))
               for q, top in zip(queries, exact))
    return hits / (10 * len(queries))


def ef_sweep(archive, queries: list[str], exact: list[set]) -> dict:
    """Recall@10 and dense p50 (ms) at other HNSW efSearch values: the trade-off the default sits on."""
    from newsrag.index import faiss_dense

    default, out = faiss_dense.HNSW_EF_SEARCH, {}
    try:
        for ef in (128, 256, 384, 512, 768):
            faiss_dense.HNSW_EF_SEARCH = ef
            times = []
            for q in queries:
                t = time.perf_counter()
                archive.search(q, k=10, mode="dense")
                times.append(time.perf_counter() - t)
            out[ef] = (recall(archive, queries, exact), float(np.percentile(times, 50)) * 1000)
    finally:
        faiss_dense.HNSW_EF_SEARCH = default
    return out


def run_child(task: str, design: str, index: Path, payload: str, backend: str = "local",
              milvus_uri: str | None = None) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", task, "--design", design, "--index", str(index),
                           "--payload", payload, "--backend", backend]
                          + (["--milvus-uri", milvus_uri] if milvus_uri else []), capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"))
    if proc.returncode:
        raise RuntimeError(f"{design} {task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def baseline_src(rev: str) -> None:
    dst = OUT / "baseline-src"
    if (dst / "newsrag").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/newsrag"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "--strip-components=1", "-C", str(dst)], input=tar.stdout, check=True)


def measure(design: str, size: int, pool: list[str], queries: list[str], avg_chunks: float,
            backend: str = "local", milvus_uri: str | None = None) -> dict:
    index = OUT / (f"scale-{design}-{size}" + ("" if backend == "local" else f"-{backend}"))
    child_args = (backend, milvus_uri)
    n_articles = int(size / avg_chunks)
    built = index / "scale-build.json"
    if not built.exists():
        shutil.rmtree(index, ignore_errors=True)
        feed = OUT / f"scale-feed-{size}.jsonl"
        if not feed.exists():
            with open(feed, "w", encoding="utf-8") as f:
                for rec in articles(pool, n_articles, seed=size, prefix="a"):
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        r = run_child("build", design, index, str(feed), *child_args)
        index.mkdir(parents=True, exist_ok=True)
        built.write_text(json.dumps(r))
    build = json.loads(built.read_text())
    adds = []
    for rep in range(3):
        new = articles(pool, 10, seed=10_000_000 + size * 10 + rep + int(time.time()), prefix=f"add{time.time_ns()}-")
        adds.append(run_child("add", design, index, json.dumps(new, ensure_ascii=False), *child_args))
    search = run_child("search", design, index, json.dumps(queries, ensure_ascii=False), *child_args)
    return {"design": design, "backend": backend, "chunks": build["chunks"], "build": build, "add10": adds,
            "search": search, "disk_mb": disk_mb(index)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--sizes", default="10000,100000", help="chunks, comma-separated")
    ap.add_argument("--baseline-sizes", default="10000", help="sizes at which the previous design runs too")
    ap.add_argument("--baseline", default="3bf3c1f", help="the commit of the previous design")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--backend", default="local", choices=("local", "milvus"),
                    help="the new design's backend (milvus: Milvus Lite in the index folder unless --milvus-uri)")
    ap.add_argument("--milvus-uri", default=None)
    ap.add_argument("--child"), ap.add_argument("--design"), ap.add_argument("--index"), ap.add_argument("--payload")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.design, args.index, args.payload, args.backend, args.milvus_uri)))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    pool = sentences(Path(args.data))
    rng = random.Random(1)
    queries = [s[: rng.randint(8, 20)] for s in rng.sample(pool, args.queries)]
    avg_chunks = 3.0  # chunks per synthetic article at the default 256-token chunks (checked by the build)
    base = {int(s) for s in args.baseline_sizes.split(",") if s}
    if base:
        baseline_src(args.baseline)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for design in (["old"] if size in base else []) + ["new"]:
            backend = args.backend if design == "new" else "local"  # the previous design had only its own
            r = measure(design, size, pool, queries, avg_chunks, backend, args.milvus_uri)
            rows.append(r)
            print(json.dumps(r), flush=True)
            suffix = "" if args.backend == "local" else f"-{args.backend}"
            (OUT / f"scale-{args.sizes.replace(',', '-')}{suffix}.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{'design':<7}{'chunks':>9}{'build ch/s':>11}{'add10 s':>14}{'add10 MB':>10}{'open s':>8}"
          f"{'hybrid p50/p95':>16}{'bm25 p50':>9}{'dense p50':>10}{'1 month p50':>12}{'recall@10':>10}{'disk MB':>9}")
    for r in rows:
        b, s = r["build"], r["search"]
        adds = sorted(a["seconds"] for a in r["add10"])
        lat = s["latency_ms"]
        print(f"{r['design']:<7}{r['chunks']:>9}{b['chunks'] / b['seconds']:>11.0f}"
              f"{'/'.join(f'{a:.1f}' for a in adds):>14}{max(a['rss_mb'] for a in r['add10']):>10.0f}"
              f"{s['cold_open_s']:>8.2f}{lat['hybrid'][0]:>9.1f}/{lat['hybrid'][1]:<6.1f}{lat['bm25'][0]:>9.1f}"
              f"{lat['dense'][0]:>10.1f}{lat['hybrid, one month'][0]:>12.1f}"
              f"{s.get('recall@10', float('nan')):>10.3f}{r['disk_mb']:>9.0f}")
    for r in rows:
        if "by_ef" in r["search"]:
            print(f"{r['chunks']} chunks, HNSW efSearch -> recall@10 / dense p50 ms: " + ", ".join(
                f"{ef}: {rc:.3f} / {ms:.1f}" for ef, (rc, ms) in r["search"]["by_ef"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

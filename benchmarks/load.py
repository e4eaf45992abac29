"""Load: N concurrent HTTP clients asking /api/ask, with and without an ingest running meanwhile.

For each archive (the bundled sample, and the first --cctv-articles of
../shared/data/cctv_xwlb_2024 when present) an index is built under
benchmarks/out/load/, `newsrag serve` starts on a free loopback port, and for
N = 1, 8, 32 client threads (requests, one session each) ask questions for
--seconds: throughput, p50/p95/p99 latency and errors. Then the same while a
further thread adds 60 articles through POST /api/articles (5 per request).

    python benchmarks/load.py [--seconds 20] [--cctv-articles 300] [--clients 1 8 32]

Targets (issue #11): throughput at 8 clients >= 1.6x that at 1; the readers'
p95 during an ingest <= 2x their p95 without it. Results: benchmarks/out/load.json.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from killloop import env, record  # noqa: E402
from retrieval import percentile, read_jsonl  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
QUESTIONS = {
    "sample": ["垃圾分类试点扩大到多少个社区？", "地铁5号线什么时候开通", "青溪区对A类高层次人才最高资助多少？",
               "端午龙舟赛冠军是谁", "图书馆新馆什么时候开放", "老旧小区改造进展如何", "公交线路调整了哪些",
               "今年的招聘计划是什么"],
    "cctv": ["国务院常务会议部署了什么", "习近平主持召开了什么会议", "乡村振兴有哪些举措", "今年粮食产量多少",
             "新质生产力是什么", "春运期间客流量", "一带一路合作成果", "生态环境保护督察", "高质量发展的要求",
             "科技创新取得了哪些突破"],
}
TIMEOUT = 120
MAX_REQUESTS = 5000  # per phase: the run stays bounded whatever the speed


def build(name: str, index: Path, cctv_articles: int) -> bool:
    """Build the index unless it exists; False when the archive's data is missing."""
    if (index / "manifest.json").exists():
        return True
    from newsrag import Archive

    if name == "sample":
        items = [ROOT / "samples" / "archive"]
    else:
        path = ROOT.parent / "shared" / "data" / "cctv_xwlb_2024" / "articles.jsonl"
        if not path.exists():
            return False
        items = [{k: a.get(k) for k in ("id", "title", "date", "source", "url", "text")}
                 for a in read_jsonl(path)][:cctv_articles]
    with Archive.open(index) as a:
        print(f"{name}: {a.ingest(items, progress=True).summary()}", flush=True)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(index: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "newsrag.cli", "serve", "--index", str(index), "--port", str(port)],
                         env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=2).ok:
                return p, url
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    p.kill()
    raise SystemExit("the server did not start")


def phase(url: str, questions: list[str], clients: int, seconds: float, ingest: list[dict] | None) -> dict:
    """``clients`` threads asking for ``seconds`` (and until the ingest, if any, is done)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    ingest_report: dict = {}

    def client(i: int) -> None:
        s = requests.Session()
        n = i
        while not stop.is_set():
            q = questions[n % len(questions)]
            n += clients
            t0 = time.perf_counter()
            try:
                r = s.post(url + "/api/ask", json={"question": q}, timeout=TIMEOUT)
                ok = r.status_code == 200
                why = f"{r.status_code}: {r.text[:100]}"
            except requests.RequestException as e:
                ok, why = False, type(e).__name__
            with lock:
                (latencies.append(time.perf_counter() - t0) if ok else errors.append(why))
                if len(latencies) + len(errors) >= MAX_REQUESTS:
                    stop.set()

    def writer() -> None:
        t0 = time.perf_counter()
        added = failed = 0
        for i in range(0, len(ingest), 5):
            try:
                r = requests.post(url + "/api/articles", json={"records": ingest[i:i + 5]}, timeout=600)
                added += r.json().get("added", 0) if r.ok else 0
                failed += 0 if r.ok else 1
            except requests.RequestException:
                failed += 1
        ingest_report.update(seconds=round(time.perf_counter() - t0, 1), added=added, failed_requests=failed)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    w = threading.Thread(target=writer, daemon=True) if ingest else None
    t0 = time.perf_counter()
    for t in threads + ([w] if w else []):
        t.start()
    deadline = t0 + max(seconds, 1)
    while time.perf_counter() < deadline or (w and w.is_alive() and time.perf_counter() < t0 + 900):
        time.sleep(0.1)
        if stop.is_set():
            break
    stop.set()
    for t in threads:
        t.join(TIMEOUT)
    elapsed = time.perf_counter() - t0
    lat = sorted(latencies)
    out = {"clients": clients, "seconds": round(elapsed, 1), "requests": len(lat), "errors": len(errors),
           "throughput": round(len(lat) / elapsed, 2),
           **{f"p{p}": round(percentile(lat, p / 100), 3) if lat else None for p in (50, 95, 99)}}
    if errors:
        out["first_error"] = errors[0]
    if ingest is not None:
        out["ingest"] = ingest_report or {"unfinished": True}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--cctv-articles", type=int, default=300)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--out", default=str(OUT / "load.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = {"machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", "archives": {}}
    batch = 0
    for name in ("sample", "cctv"):
        index = OUT / "load" / name
        if not build(name, index, args.cctv_articles):
            print(f"{name}: no data, skipped")
            continue
        server, url = serve(index)
        rows = []
        try:
            phase(url, QUESTIONS[name], 2, 5, None)  # warm: the model loads, the caches fill
            for clients in args.clients:
                rows.append(dict(phase(url, QUESTIONS[name], clients, args.seconds, None), ingest=None))
                batch += 1
                new = [dict(record(i + 1000 * batch), id=f"load-{batch}-{i}") for i in range(60)]
                rows.append(phase(url, QUESTIONS[name], clients, args.seconds, new))
                for r in rows[-2:]:
                    print(f"{name:6} {r['clients']:3d} clients{' + ingest' if r['ingest'] else '         '}: "
                          f"{r['throughput']:6.2f} answers/s, p50 {r['p50']} s, p95 {r['p95']} s, "
                          f"p99 {r['p99']} s, {r['errors']} errors"
                          + (f"; ingest of 60 in {r['ingest'].get('seconds')} s" if r["ingest"] else ""), flush=True)
        finally:
            server.terminate()
            server.wait(30)
        plain = {r["clients"]: r for r in rows if not r["ingest"]}
        loaded = {r["clients"]: r for r in rows if r["ingest"]}
        summary = {}
        if 1 in plain and 8 in plain and plain[1]["throughput"]:
            summary["speedup_8_vs_1"] = round(plain[8]["throughput"] / plain[1]["throughput"], 2)
        summary["p95_ratio_with_ingest"] = {c: round(loaded[c]["p95"] / plain[c]["p95"], 2)
                                            for c in plain if c in loaded and plain[c]["p95"] and loaded[c]["p95"]}
        print(f"{name}: {summary}")
        results["archives"][name] = {"index": str(index), "phases": rows, **summary}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

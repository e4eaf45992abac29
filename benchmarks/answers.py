"""Answer benchmark on news QA: does the gold answer appear in newsrag's answer?

Archive: the antiterror_news_mrc passages plus the 1,815 cctv_xwlb_2024 articles.
"first sentence": a gold answer in the answer's first sentence (does it lead with it?).
Baselines, in the same run: the first 150 characters of the top search hit, and the
previous extractive generator (``--previous``, a commit; its extractive.py from `git show`)
given the same passages as the current one.

    python benchmarks/answers.py [--data ../shared/data] [--questions N] [--previous bde8212]

When benchmarks/retrieval.py has built its index, this one starts from a copy
of it (minus the other QA sets) instead of embedding everything again.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import statistics
import subprocess
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


def scored(gold: list[str], text: str, first: str) -> tuple[bool, bool, int]:
    """(a gold answer is in the text, one is in its first sentence, the text's length)."""
    return any(g in text for g in gold), any(g in first for g in gold), len(text)


def previous_generator(rev: str, embedder):
    """The extractive generator of commit ``rev``, loaded inside the newsrag package (its
    relative imports then find today's prompts and text modules)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/newsrag/extractive.py"],
                         capture_output=True, text=True, check=True).stdout
    path = ROOT / "benchmarks" / "out" / f"extractive-{rev}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"newsrag._extractive_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module.ExtractiveGenerator(embedder)


class Beside:
    """Today's generator, with the previous one run on the same passages (its text and time kept)."""

    name = "extractive"

    def __init__(self, current, previous):
        self.current, self.previous = current, previous
        self.reset()

    def reset(self):
        self.previous_text, self.previous_seconds, self.current_seconds = "", 0.0, 0.0

    def answer(self, question, passages, *, today):
        t0 = time.perf_counter()
        self.previous_text = "".join(self.previous.answer(question, passages, today=today))
        t1 = time.perf_counter()
        self.previous_seconds = t1 - t0
        yield from self.current.answer(question, passages, today=today)
        self.current_seconds = time.perf_counter() - t1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--index", default=str(ROOT / "benchmarks" / "out" / "answers-index"))
    ap.add_argument("--questions", type=int, default=0, help="questions to ask (0: all 1,604)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=0, help="print this many answers")
    ap.add_argument("--previous", default="bde8212", help="the commit whose extractive generator runs beside")
    ap.add_argument("--dump", help="write each question's answers (current and previous) to this JSONL file")
    args = ap.parse_args()
    data = Path(args.data)
    archive = build(data, Path(args.index))
    previous = f"previous extractive ({args.previous})"
    beside = Beside(archive.generator, previous_generator(args.previous, archive.embedder))
    archive._generator = beside

    qs = read_jsonl(data / "antiterror_news_mrc" / "qa.jsonl")
    if args.questions and len(qs) > args.questions:
        qs = random.Random(args.seed).sample(qs, args.questions)
    dump = open(args.dump, "w", encoding="utf-8") if args.dump else None
    rows = {"newsrag (extractive)": [], previous: [], "baseline: top hit, first 150 chars": []}
    latencies = {k: [] for k in rows}
    for i, q in enumerate(qs):
        beside.reset()
        t0 = time.perf_counter()
        ans = archive.ask(q["question"])
        seconds = time.perf_counter() - t0
        latencies["newsrag (extractive)"].append(seconds - beside.previous_seconds)
        latencies[previous].append(seconds - beside.current_seconds)
        text = "".join(s.text for s in ans.sentences) if ans.sentences else ans.text
        first = ans.sentences[0].text if ans.sentences else ans.text
        rows["newsrag (extractive)"].append(scored(q["answers"], text, first))
        old = beside.previous_text if not ans.no_evidence else ans.text
        rows[previous].append(scored(q["answers"], old.replace("\n", ""), old.split("\n")[0]))
        t0 = time.perf_counter()
        hits = archive.search(q["question"], k=1)
        base = hits[0].text[:150] if hits else ""
        latencies["baseline: top hit, first 150 chars"].append(time.perf_counter() - t0)
        rows["baseline: top hit, first 150 chars"].append(scored(q["answers"], base, base[:base.find("。") + 1]))
        if dump:
            dump.write(json.dumps({"question": q["question"], "gold": q["answers"], "answer": text,
                                   "previous": old, "hit": rows["newsrag (extractive)"][-1][0],
                                   "previous_hit": rows[previous][-1][0]}, ensure_ascii=False) + "\n")
        if i < args.show:
            print(f"\nQ: {q['question']}  gold: {q['answers']}\nA: {ans.text}")
    print(f"\n{len(qs)} questions from antiterror_news_mrc\n")
    print(f"{'system':<38}{'hit rate':>9}{'first sentence':>15}{'median chars':>14}{'p50 ms':>9}{'p95 ms':>9}")
    for name, r in rows.items():
        lat = latencies[name]
        print(f"{name:<38}{sum(h for h, _, _ in r) / len(r):>9.3f}{sum(f for _, f, _ in r) / len(r):>15.3f}"
              f"{statistics.median(n for _, _, n in r):>14.0f}"
              f"{statistics.median(lat) * 1000:>9.0f}{percentile(lat, 0.95) * 1000:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

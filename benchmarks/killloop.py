"""Kill loop: SIGKILL the CLI at random moments of ingest, delete and re-ingest, and check after each.

The operations (a synthetic feed with reposts, a delete that promotes a repost,
a second feed that edits, re-adds and reposts) repeat in rounds (the first
feed again undoes the edits, so every round works). Each runs uninterrupted
into a reference index, timed; then into another index, each attempt a
`newsrag` subprocess killed at a random moment of that time (a fifth of them
during its start-up), at most three times, and then run to the end, as a
re-run after a crash would. After every kill `newsrag check` (a fresh process:
its open catches up first) must exit 0. Rounds go on until the number of kills
asked for is reached; then both indexes must hold the same articles and
chunks and give the same search results.

    python benchmarks/killloop.py [--kills 20] [--articles 30] [--seed 0] [--out benchmarks/out/killloop]

Prints each kill, where it landed, and a tally; exit status 0 when every check
passed and the two indexes converged.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLACES = ["东湖", "西山", "南桥", "北塘", "青浦", "金泽", "朱家角", "练塘", "白鹤", "华新", "重固", "赵巷"]
TOPICS = ["新建一座图书馆，藏书{n}万册", "开通{n}条公交线路", "完成{n}个老旧小区改造",
          "举办第{n}届龙舟赛", "招聘{n}名社区工作者", "新增{n}个垃圾分类投放点"]
QUESTIONS = ["哪个镇开通了公交线路", "图书馆藏书", "龙舟赛", "垃圾分类投放点", "老旧小区改造"]


def record(i: int, edit: int = 0) -> dict:
    place, topic = PLACES[i % len(PLACES)], TOPICS[i % len(TOPICS)].format(n=i + 3 + edit)
    text = (f"{place}镇今年{topic}。镇政府在第{i + 1}次工作例会上作出这一决定。"
            f"据介绍，这项工作由{place}镇第{i % 5 + 1}工作组负责，预计投入资金{(i + 2) * 37 + edit}万元。"
            f"当地居民代表{i + 7}人参加了会议。" + ("会后，镇里还公布了第二阶段的时间表。" * edit))
    return {"id": f"k-{i:03d}", "title": f"{place}镇{topic}", "date": f"2024-03-{i % 28 + 1:02d}",
            "source": "测试日报", "text": text}


def repost(i: int, of: dict) -> dict:
    return dict(of, id=f"r-{i:03d}", source="转载网", text=of["text"] + "（转载）")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def operations(folder: Path, n: int) -> list[tuple[str, list[str]]]:
    """(name, newsrag arguments) of each operation, in order; feeds are written into ``folder``."""
    first = [record(i) for i in range(n)]
    first += [repost(i, first[i]) for i in range(0, n, 7)]  # near-duplicates of every 7th article
    doomed = [f"k-{i:03d}" for i in range(0, n, 4)]  # k-000 has a repost: the repost takes over
    second = [record(i, edit=1 if i % 3 == 0 else 0) for i in range(n)]  # edits, and re-adds the deleted
    second += [repost(i, second[i]) for i in range(2, n, 9)]
    a, b = write_jsonl(folder / "first.jsonl", first), write_jsonl(folder / "second.jsonl", second)
    return [("ingest first feed", ["ingest", str(a), "-q", "--batch-size", "2"]),
            ("delete", ["delete", *doomed]),
            ("ingest second feed", ["ingest", str(b), "-q", "--batch-size", "2"])]


def env() -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", OMP_WAIT_POLICY="passive")
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    return e


def newsrag(args: list[str], index: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "newsrag.cli", *args, "--index", str(index)], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(args: list[str], index: Path, name: str) -> None:
    p = newsrag(args, index)
    out, err = p.communicate(timeout=900)
    # A delete repeated after it committed finds its articles gone: status 1, and nothing to do.
    if p.returncode not in ((0, 1) if name == "delete" else (0,)):
        raise SystemExit(f"{name} failed ({p.returncode}): {err.strip()[-2000:]}")


def where(index: Path, gen_before: int) -> str:
    """Where a kill landed, read from the files it left (before anything opens the index)."""
    db_path = index / "archive.sqlite3"
    if not db_path.exists():
        return "before the index existed"
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        db.close()
    except sqlite3.Error:
        return "before the schema was written"
    gen = int(row[0]) if row else 0
    saved = []
    for kind in ("dense", "sparse"):
        try:
            saved.append(json.loads((index / "index" / kind / "state.json").read_text())["generation"])
        except (OSError, ValueError, KeyError):
            saved.append(0)
    if gen == gen_before:
        return "before its first commit"
    if min(saved) < gen:
        return "after a commit, before the search structures saved it"
    return "between commits, search structures level"


def store_generation(index: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{index / 'archive.sqlite3'}?mode=ro", uri=True, timeout=5)
        row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        db.close()
        return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0


def check(index: Path) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "newsrag.cli", "check", "--index", str(index)], env=env(),
                       capture_output=True, text=True, timeout=600)
    return p.returncode, (p.stdout + p.stderr).strip().splitlines()[-1] if (p.stdout + p.stderr).strip() else ""


def content(index: Path) -> tuple:
    db = sqlite3.connect(f"file:{index / 'archive.sqlite3'}?mode=ro", uri=True)
    arts = db.execute("SELECT id, content_hash, canonical_id FROM articles ORDER BY id").fetchall()
    chunks = db.execute('SELECT article_id, seq, start, "end", text FROM chunks ORDER BY article_id, seq').fetchall()
    db.close()
    return arts, chunks


def searches(index: Path) -> list:
    sys.path.insert(0, str(ROOT / "src"))
    from newsrag import Archive

    with Archive.open(index) as a:
        return [[h.article_id for h in a.search(q, k=5)] for q in QUESTIONS]


KILLS_PER_OPERATION = 3  # then it runs to the end: a crash is followed by a re-run


def run(out: Path, kills: int, articles: int, seed: int, log=print) -> dict:
    rng = random.Random(seed)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ops = operations(out, articles)
    reference, killed = out / "reference", out / "killed"
    landed: Counter = Counter()
    events, failures, finished_first, startup, rounds = [], [], 0, None, 0

    def moment(duration: float) -> float:
        """A fifth of the kills in the start-up, the rest while the operation works."""
        if rng.random() < 0.2 or duration <= startup:
            return rng.uniform(0.05, 1.0) * min(startup, duration)
        return rng.uniform(startup, duration)

    while len(events) < kills and rounds < 4 * kills:
        rounds += 1
        for name, args in ops:
            t0 = time.time()
            finish(args, reference, name)
            duration = time.time() - t0
            if startup is None:
                t0 = time.time()
                check(reference)
                startup = time.time() - t0  # a process's start and open, before any work
            log(f"round {rounds}: {name}: {duration:.1f} s uninterrupted")
            for _ in range(KILLS_PER_OPERATION):
                gen_before = store_generation(killed)
                p = newsrag(args, killed)
                delay = moment(duration)
                try:
                    p.wait(timeout=delay)
                    p.communicate()
                    finished_first += 1  # it ended before the kill came: the operation is done
                    break
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    p.communicate()
                spot = where(killed, gen_before)
                rc, last = check(killed)
                landed[spot] += 1
                events.append({"round": rounds, "operation": name, "after_s": round(delay, 2), "landed": spot,
                               "check": rc})
                log(f"kill {len(events):2d}: {name} after {delay:5.1f} s, {spot}; check exit {rc}: {last}")
                if rc != 0:
                    failures.append(f"kill {len(events)}: check exit {rc}: {last}")
            finish(args, killed, name)

    rc, last = check(killed)
    if rc != 0:
        failures.append(f"final check exit {rc}: {last}")
    same_content = content(killed) == content(reference)
    same_search = searches(killed) == searches(reference)
    if not same_content:
        failures.append("articles or chunks differ from the uninterrupted run")
    if not same_search:
        failures.append("search results differ from the uninterrupted run")
    summary = {"kills": len(events), "rounds": rounds, "landed": dict(landed),
               "finished_before_kill": finished_first, "checks_passed": sum(e["check"] == 0 for e in events),
               "same_content": same_content, "same_search": same_search, "failures": failures, "events": events}
    log(f"{len(events)} kills in {rounds} rounds; landed: " + "; ".join(f"{k}: {v}" for k, v in landed.items())
        + f"; {finished_first} attempts ended before their kill")
    log(f"checks passed after {summary['checks_passed']} of {len(events)} kills; converged with the "
        f"uninterrupted run: content {same_content}, search {same_search}")
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--articles", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "killloop"))
    args = ap.parse_args()
    summary = run(Path(args.out), args.kills, args.articles, args.seed)
    for line in summary["failures"]:
        print(f"FAILED: {line}")
    return 1 if summary["failures"] or summary["kills"] < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())

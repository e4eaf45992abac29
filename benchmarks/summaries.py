"""Single-article summaries: character-level ROUGE-1/2/L (F1) against the reference,
for newsrag's summarizer (``Archive.summarize``, the extractive default unless
--generator says otherwise) and, in the same run, a lead baseline that takes the
article's first characters up to the same length budget. LCSTS (short Weibo news
posts, headline references) and CLTS (long news articles, editor summaries).

    python benchmarks/summaries.py [--data ../shared/data] [--generator openai --base-url URL --model M]

The budget is the same rule for both systems and every article, set before
seeing the references: a fifth of the article, between 30 and 200 characters.
The summarizer's output is checked to stay within it.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from newsrag import Archive  # noqa: E402
from retrieval import read_jsonl  # noqa: E402

_SKIP = re.compile(r"[\s\W_]+", re.UNICODE)


def chars(s: str) -> list[str]:
    return list(_SKIP.sub("", s))


def rouge_n(ref: list[str], hyp: list[str], n: int) -> float:
    r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
    h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
    overlap = sum((r & h).values())
    if not overlap:
        return 0.0
    p, rc = overlap / sum(h.values()), overlap / sum(r.values())
    return 2 * p * rc / (p + rc)


def rouge_l(ref: list[str], hyp: list[str]) -> float:
    if not ref or not hyp:
        return 0.0
    prev = [0] * (len(hyp) + 1)
    for a in ref:
        cur = [0]
        for j, b in enumerate(hyp, 1):
            cur.append(prev[j - 1] + 1 if a == b else max(prev[j], cur[j - 1]))
        prev = cur
    lcs = prev[-1]
    if not lcs:
        return 0.0
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2 * p * r / (p + r)


def budget(article: str) -> int:
    return max(30, min(200, len(article) // 5))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--generator", default="extractive")
    ap.add_argument("--model")
    ap.add_argument("--base-url")
    args = ap.parse_args()
    print(f"{'set':<14}{'system':<12}{'n':>5}{'R-1':>8}{'R-2':>8}{'R-L':>8}{'chars':>7}")
    with tempfile.TemporaryDirectory() as tmp, Archive.open(Path(tmp) / "index", generator=args.generator,
                                                            model=args.model, base_url=args.base_url) as archive:
        for name in ("lcsts_part3", "clts_samples"):
            items = read_jsonl(Path(args.data) / name / "summaries.jsonl")
            system = archive.generator.name
            scores = {system: [], "lead": []}
            for it in items:
                article, ref = it["article"], chars(it["summary"])
                b = budget(article)
                summary = archive.summarize(text=article, max_chars=b).text
                assert len(summary) <= b, (it["id"], b, summary)
                for label, hyp in ((system, summary), ("lead", article[:b])):
                    h = chars(hyp)
                    scores[label].append((rouge_n(ref, h, 1), rouge_n(ref, h, 2), rouge_l(ref, h), len(hyp.strip())))
            for label, rows in scores.items():
                n = len(rows)
                avg = [sum(r[i] for r in rows) / n for i in range(4)]
                print(f"{name:<14}{label:<12}{n:>5}{avg[0]:>8.3f}{avg[1]:>8.3f}{avg[2]:>8.3f}{avg[3]:>7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

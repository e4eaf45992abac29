"""A random-weight cross-encoder of a real reranker's shape, for timing `retrieval.py --rerank`
where no trained one can be downloaded (its rankings are noise: it measures cost, not quality).

    python benchmarks/random_reranker.py OUT [--size base|tiny] [--data ../shared/data]

``base`` has the shape of a BERT-base reranker (12 layers, hidden 768, 512 positions), which is
what BAAI/bge-reranker-base (XLM-R base) costs per token; its vocabulary is every character of
the benchmark's texts, one token each, as a Chinese BERT tokenizes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # tiny_models: the same builder the tests use

from newsrag.text import normalize  # noqa: E402
from retrieval import SETS, read_jsonl, records  # noqa: E402
from tiny_models import cross_encoder  # noqa: E402

SIZES = {"base": dict(hidden=768, layers=12, heads=12, intermediate=3072),
         "tiny": dict(hidden=32, layers=2, heads=2, intermediate=64)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--size", choices=SIZES, default="base")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args()
    data = Path(args.data)
    texts = [normalize(r["title"] or "") + normalize(r["text"] or "") for r in records(data)]
    texts += [normalize(q["question"]) for name in SETS for q in read_jsonl(data / name / "qa.jsonl")]
    out = cross_encoder(Path(args.out), texts, **SIZES[args.size])
    print(f"random {args.size} cross-encoder written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

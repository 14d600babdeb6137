"""Benchmark: dedup precision and recall on the labelled real-data leak pairs.

The fixture (tests/fixtures/leakage.jsonl; provenance in tests/fixtures/README.md) pairs
real NQ-open dev and SimpleQA test questions with hand-written training questions: leaks
(the same fact reworded) and distractors (the same answer about another subject). The
training side sits among background questions (EfficientQA dev, 1,800 real NQ-style
questions) so retrieval has competition. Settings measured:
- the heuristic verifier as params.yaml configures it, TF-IDF retrieval at several top_k;
- the same without background;
- dense retrieval, with --embedder DIR (a sentence-transformers directory);
- the LLM verifier, with --judge-url URL --judge-model NAME (an OpenAI-compatible server).

    python benchmarks/dedup_fixture.py [--params params.yaml] [--out metrics/dedup_fixture.json]
Prints a table and writes the figures as JSON; asserts nothing (tests/test_leak_fixture.py
holds the verifier to its targets).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from recall.config import SourceConfig, load_params
from recall.contract import QAItem
from recall.datasets import load_source
from recall.dedup import HeuristicVerifier, LLMVerifier
from recall.leak_fixture import fixture_items, measure, read_pairs

ROOT = Path(__file__).resolve().parents[1]


def background(path: Path) -> list[QAItem]:
    if not path.exists():
        return []
    rows = load_source(SourceConfig(name="efficientqa", format="nq_open", role="train",
                                    path=str(path)))
    return [QAItem(r.native_id, "efficientqa", r.question, r.answers, None, "train")
            for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--fixture", type=Path, default=ROOT / "tests/fixtures/leakage.jsonl")
    ap.add_argument("--background", type=Path, default=ROOT.parent / "shared/data/nq_open/"
                    "NQ-open.efficientqa.dev.1.1.jsonl")
    ap.add_argument("--embedder", default="", help="sentence-transformers directory")
    ap.add_argument("--judge-url", default="")
    ap.add_argument("--judge-model", default="")
    ap.add_argument("--out", type=Path, default=ROOT / "metrics/dedup_fixture.json")
    args = ap.parse_args()
    params = load_params(args.params)
    pairs = read_pairs(args.fixture)
    bg = background(args.background)
    base = dataclasses.replace(params.dedup, embedding_model="")
    settings = [(f"heuristic, tfidf, top_k {k}", dataclasses.replace(base, top_k=k), bg)
                for k in (5, 10, 20)]
    settings.append(("heuristic, tfidf, no background", base, []))
    if args.embedder:
        settings.append(("heuristic, dense", dataclasses.replace(
            base, embedding_model=args.embedder), bg))
    results = {"fixture": str(args.fixture.relative_to(ROOT)), "background": len(bg),
               "params": {"max_df": base.max_df, "min_overlap": base.min_overlap,
                          "strong_overlap": base.strong_overlap}, "settings": {}}
    for name, cfg, background_items in settings:
        items = fixture_items(pairs, background_items)
        verifier = HeuristicVerifier([it.question for it in items], cfg.max_df,
                                     cfg.min_overlap, cfg.strong_overlap)
        results["settings"][name] = measure(pairs, items, cfg, verifier)
    if args.judge_url:
        items = fixture_items(pairs, bg)
        results["settings"]["llm, tfidf"] = measure(
            pairs, items, base, LLMVerifier(params.judge, args.judge_url, args.judge_model))
    print(f"{len(pairs)} labelled pairs, {len(bg)} background training questions")
    print(f"{'setting':34} {'retrieved':>9} {'precision':>9} {'recall':>7}  false alarms")
    for name, m in results["settings"].items():
        print(f"{name:34} {m['leak_partner_retrieved']:9.3f} {m['precision']:9.3f} "
              f"{m['recall']:7.3f}  {m['false_alarms']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

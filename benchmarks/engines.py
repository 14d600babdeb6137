"""Benchmark: samples per second of the vLLM and transformers engines, side by side.

Same model, same items, same settings: accessibility@128 on the test split (128 samples
per test item at the rollout settings), as the sample stage draws them.

    python benchmarks/engines.py [--model models/base] [--items data/validated/items.jsonl]
                                 [--split test] [--n 128] [--limit 0]
Run `dvc repro base_model` first (or `make experiment`) so the model and items exist.
Prints one table row per engine; it is a benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

from recall.config import load_params
from recall.contract import read_items
from recall.engines import make_engine
from recall.judge.rules import RuleJudge
from recall.sampling import accuracy_by_split, rollout_settings, sample_items


def bench(kind: str, model: str, items, settings, seed: int) -> dict:
    start = time.perf_counter()
    engine = make_engine(kind, model, seed=seed)
    loaded = time.perf_counter()
    records, _ = sample_items(engine, RuleJudge(), items, settings, model)
    done = time.perf_counter()
    n = sum(len(r.completions) for r in records)
    return {"engine": kind, "startup_s": loaded - start, "sampling_s": done - loaded,
            "samples": n, "samples_per_s": n / (done - loaded),
            "pass@1": accuracy_by_split(records)[items[0].split]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", default="models/base")
    ap.add_argument("--items", default="data/validated/items.jsonl")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--limit", type=int, default=0, help="first N items only (0: all)")
    ap.add_argument("--engines", default="vllm,transformers")
    args = ap.parse_args()
    params = load_params(args.params)
    items = [it for it in read_items(args.items) if it.split == args.split]
    items = items[: args.limit] if args.limit else items
    settings = rollout_settings(params.rollout, args.n, params.experiment.seed)
    rows = [bench(kind, args.model, items, settings, params.experiment.seed)
            for kind in args.engines.split(",")]
    print(f"\n{len(items)} {args.split} items x {args.n} samples, model {args.model}")
    print(f"{'engine':<14}{'startup s':>10}{'sampling s':>12}{'samples':>10}{'samples/s':>12}"
          f"{'pass@1':>8}")
    for r in rows:
        print(f"{r['engine']:<14}{r['startup_s']:>10.1f}{r['sampling_s']:>12.1f}{r['samples']:>10}"
              f"{r['samples_per_s']:>12.0f}{r['pass@1']:>8.3f}")


if __name__ == "__main__":
    main()

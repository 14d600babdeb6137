"""Benchmark: dedup candidate retrieval for 3,610 test items against 10,000 train items.

Test: NQ-open dev (3,610 real questions). Train: EfficientQA dev (1,800) and SimpleQA (4,326)
from ../shared/data, filled up to 10,000 with toy-world questions (timing needs the size, and
there is no 10,000-question real train file on this machine). Times TF-IDF top-k retrieval
and the heuristic verifier separately and counts verifier calls per test item.

    python benchmarks/dedup.py [--shared ../shared/data] [--train-size 10000] [--top-k 10]
Prints figures; asserts nothing. The target is retrieval <= 60 s on 2 cores, calls <= k.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections import Counter
from pathlib import Path

from recall.config import SourceConfig, load_params
from recall.contract import QAItem
from recall.datasets import load_source
from recall.dedup import HeuristicVerifier, candidates
from recall.world import generate_world


def _items(rows, name: str, split: str) -> list[QAItem]:
    return [QAItem(f"{name}-{r.native_id}", name, r.question, r.answers, r.fact, split)
            for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--train-size", type=int, default=10_000)
    ap.add_argument("--top-k", type=int, default=10)
    args = ap.parse_args()
    params = load_params()
    cfg = dataclasses.replace(params.dedup, top_k=args.top_k)

    def source(name, fmt, rel):
        return load_source(SourceConfig(name=name, format=fmt, role="test",
                                        path=str(args.shared / rel)))

    test = _items(source("nq_dev", "nq_open", "nq_open/NQ-open.dev.jsonl"), "nq_dev", "test")
    train = (_items(source("eqa", "nq_open", "nq_open/NQ-open.efficientqa.dev.1.1.jsonl"),
                    "eqa", "train")
             + _items(source("sqa", "simpleqa", "simpleqa/simple_qa_test_set.csv"), "sqa", "train"))
    seed = 0
    while len(train) < args.train_size:
        toy = [dataclasses.replace(it, id=f"s{seed}-{it.id}", split="train")
               for it in generate_world(params.world, seed).items]
        train += toy[:args.train_size - len(train)]
        seed += 1

    start = time.perf_counter()
    per_target = candidates(test, train, cfg)
    retrieval_s = time.perf_counter() - start
    verifier = HeuristicVerifier([it.question for it in test + train], cfg.max_df)
    pairs = [(test[i], train[j]) for i, cands in enumerate(per_target) for j, _, _ in cands]
    start = time.perf_counter()
    verdicts = verifier.verify(pairs)
    verify_s = time.perf_counter() - start
    calls = Counter(len(c) for c in per_target)
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    print(f"test items: {len(test)}   train items: {len(train)}   top_k: {cfg.top_k}")
    print(f"candidate retrieval (TF-IDF char {cfg.ngram_range[0]}-{cfg.ngram_range[1]}-grams, "
          f"exact + normalised matches): {retrieval_s:.1f} s")
    print(f"verifier calls: {len(pairs)} = {len(pairs) / len(test):.2f} per test item, "
          f"max {max(calls)} (target <= {cfg.top_k})")
    print(f"heuristic verification: {verify_s:.1f} s; contained pairs: "
          f"{sum(v for v, _ in verdicts)}")


if __name__ == "__main__":
    main()

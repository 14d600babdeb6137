"""Benchmark: LLM judge calls per judged sample, with and without the cost savers.

Judges the base model's accessibility@128 samples of the toy test split through a real
vLLM server serving the toy judge: once with exact-match fast path, in-batch dedup and a
fresh verdict cache, then a second pass over the same samples (the cache now warm, as in
a train@ stage's evaluation or a rerun), and once with all three off on a subset (one call per
sample by construction, measured anyway).

    python benchmarks/judge_calls.py [--samples runs/base/samples.jsonl] [--judge models/judge]
Needs `dvc repro sample@base judge` first. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from recall.config import load_params
from recall.contract import read_items, read_records
from recall.judge.client import LLMJudge
from recall.judge.interface import JudgeRequest
from recall.judge.server import serve_judge


def judge_all(judge: LLMJudge, records, items) -> float:
    start = time.perf_counter()
    for r in records:  # one batch per item: its 128 samples, as the sample stage sends them
        it = items[r.id]
        judge.judge([JudgeRequest(it.question, it.answers, c) for c in r.completions])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--samples", default="runs/base/samples.jsonl")
    ap.add_argument("--items", default="data/validated/items.jsonl")
    ap.add_argument("--judge", default="models/judge")
    ap.add_argument("--split", default="test")
    ap.add_argument("--plain-items", type=int, default=20, help="items judged with savers off")
    args = ap.parse_args()
    params = load_params(args.params)
    items = {it.id: it for it in read_items(args.items)}
    records = [r for r in read_records(args.samples) if r.split == args.split]
    n = sum(len(r.completions) for r in records)
    rows = []
    with serve_judge(args.judge) as base_url, tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(params.judge, backend="llm", prompt="toy",
                                  cache=str(Path(tmp) / "verdicts.sqlite"), fast_path=True)
        saver = LLMJudge(cfg, base_url, args.judge)
        seconds = judge_all(saver, records, items)
        rows.append(("fast path + dedup + cache (cold)", n, dict(saver.stats), seconds))
        before = dict(saver.stats)
        seconds = judge_all(saver, records, items)
        warm = {k: v - before.get(k, 0) for k, v in saver.stats.items()}
        rows.append(("same, second pass (cache warm)", n, warm, seconds))
        plain_cfg = dataclasses.replace(cfg, cache="", fast_path=False)
        plain = LLMJudge(plain_cfg, base_url, args.judge, dedup=False)
        subset = records[: args.plain_items]
        seconds = judge_all(plain, subset, items)
        rows.append(("none (subset)", sum(len(r.completions) for r in subset), dict(plain.stats),
                     seconds))
    print(f"\n{len(records)} {args.split} items, {n} samples, judge {args.judge}")
    print(f"{'savers':<34}{'samples':>9}{'calls':>9}{'calls/sample':>14}{'fast path':>11}"
          f"{'cache hits':>12}{'seconds':>9}")
    for name, samples, stats, seconds in rows:
        print(f"{name:<34}{samples:>9}{stats.get('calls', 0):>9}"
              f"{stats.get('calls', 0) / samples:>14.4f}{stats.get('fast_path', 0):>11}"
              f"{stats.get('cache_hits', 0):>12}{seconds:>9.1f}")


if __name__ == "__main__":
    main()

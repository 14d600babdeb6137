"""Sampling analyses of one model: greedy answers and n samples per item, every one judged."""

from __future__ import annotations

from typing import Sequence

from recall.config import RolloutConfig
from recall.contract import Engine, Judge, QAItem, SampleRecord, SamplingSettings
from recall.judge import JudgeRequest
from recall.metrics import accuracy
from recall.prompts import DIRECT


def rollout_settings(rollout: RolloutConfig, n: int, seed: int) -> SamplingSettings:
    """The paper's analysis sampling: the rollout temperature/top-p/top-k, n per item."""
    return SamplingSettings(n=n, temperature=rollout.temperature, top_p=rollout.top_p,
                            top_k=rollout.top_k, max_tokens=rollout.max_tokens, seed=seed)


def greedy_settings(rollout: RolloutConfig) -> SamplingSettings:
    return SamplingSettings(n=1, temperature=0.0, max_tokens=rollout.max_tokens)


def sample_items(engine: Engine, judge: Judge, items: Sequence[QAItem],
                 settings: SamplingSettings, model: str) -> tuple[list[SampleRecord], int]:
    """One record per item: completions from `engine`, each scored 0/1 by `judge`.

    Returns the records and the number of completions the judge gave no verdict on
    (an unparseable judge reply); those score 0, never 1, and the count is reported.
    """
    completions = engine.generate([DIRECT.render(it.question) for it in items], settings)
    if len(completions) != len(items):
        raise RuntimeError(f"engine {engine.name} returned {len(completions)} results "
                           f"for {len(items)} prompts")
    for item, outs in zip(items, completions):
        if len(outs) != settings.n:
            raise RuntimeError(f"engine {engine.name} returned {len(outs)} completions "
                               f"for item {item.id}, expected {settings.n}")
    # One judge batch for the whole pool, not one per item: an item has only a handful of
    # distinct answers, so per-item batches leave an LLM judge's concurrency idle.
    requests = [JudgeRequest(it.question, tuple(it.answers), c)
                for it, outs in zip(items, completions) for c in outs]
    verdicts = judge.judge(requests)
    records, unjudged = [], 0
    for k, (item, outs) in enumerate(zip(items, completions)):
        mine = verdicts[k * settings.n:(k + 1) * settings.n]
        unjudged += sum(v.value is None for v in mine)
        records.append(SampleRecord(
            id=item.id, split=item.split, model=model, prompt_style=DIRECT.name,
            temperature=settings.temperature, completions=tuple(outs),
            scores=tuple(v.value or 0 for v in mine),
        ))
    return records, unjudged


def accuracy_by_split(records: Sequence[SampleRecord]) -> dict[str, float]:
    """Per split, the mean over items of each item's share of correct completions.

    For greedy records (one completion) this is greedy accuracy; for n samples it is pass@1.
    """
    by_split: dict[str, list[float]] = {}
    for r in records:
        by_split.setdefault(r.split, []).append(sum(r.scores) / len(r.scores))
    return {split: accuracy(v) for split, v in sorted(by_split.items())}

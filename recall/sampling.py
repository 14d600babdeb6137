"""Sampling analyses of one model: greedy answers and n samples per item, every one judged."""

from __future__ import annotations

from typing import Sequence

from recall.config import RolloutConfig
from recall.contract import Engine, Judge, QAItem, SampleRecord, SamplingSettings
from recall.judge.interface import JudgeRequest
from recall.metrics import accuracy
from recall.prompts import COT, DIRECT, PromptStyle


def rollout_settings(rollout: RolloutConfig, n: int, seed: int) -> SamplingSettings:
    """The paper's analysis sampling: the rollout temperature/top-p/top-k, n per item."""
    return SamplingSettings(n=n, temperature=rollout.temperature, top_p=rollout.top_p,
                            top_k=rollout.top_k, max_tokens=rollout.max_tokens, seed=seed)


def greedy_settings(rollout: RolloutConfig) -> SamplingSettings:
    return SamplingSettings(n=1, temperature=0.0, max_tokens=rollout.max_tokens)


def sample_items(engine: Engine, judge: Judge, items: Sequence[QAItem],
                 settings: SamplingSettings, model: str,
                 style: PromptStyle = DIRECT) -> tuple[list[SampleRecord], int]:
    """One record per item: completions from `engine`, each scored 0/1 by `judge`.

    The records hold the answers `style` extracts from the raw completions. Returns the
    records and the number of completions the judge gave no verdict on (an unparseable judge
    reply); those score 0, never 1, and the count is reported.
    """
    return judged_records(judge, items, raw_completions(engine, items, settings, style),
                          settings, model, style)


def raw_completions(engine: Engine, items: Sequence[QAItem], settings: SamplingSettings,
                    style: PromptStyle = DIRECT) -> list[list[str]]:
    """`settings.n` raw completions per item of the `style` prompt, checked for count.

    The prompt is rendered with the engine's tokenizer: through its chat template when it
    has one (instruct models), else the raw format (the toy)."""
    tokenizer = getattr(engine, "tokenizer", None)
    completions = engine.generate([style.render(it.question, tokenizer) for it in items], settings)
    if len(completions) != len(items):
        raise RuntimeError(f"engine {engine.name} returned {len(completions)} results "
                           f"for {len(items)} prompts")
    for item, outs in zip(items, completions):
        if len(outs) != settings.n:
            raise RuntimeError(f"engine {engine.name} returned {len(outs)} completions "
                               f"for item {item.id}, expected {settings.n}")
    return completions


def judged_records(judge: Judge, items: Sequence[QAItem], raw: Sequence[Sequence[str]],
                   settings: SamplingSettings, model: str,
                   style: PromptStyle = DIRECT) -> tuple[list[SampleRecord], int]:
    """Records of the answers `style` extracts from `raw`, judged; see `sample_items`."""
    answers = [tuple(style.answer(c) for c in outs) for outs in raw]
    # One judge batch for the whole pool, not one per item: an item has only a handful of
    # distinct answers, so per-item batches leave an LLM judge's concurrency idle.
    requests = [JudgeRequest(it.question, tuple(it.answers), c)
                for it, outs in zip(items, answers) for c in outs]
    verdicts = judge.judge(requests)
    records, unjudged = [], 0
    for k, (item, outs) in enumerate(zip(items, answers)):
        mine = verdicts[k * settings.n:(k + 1) * settings.n]
        unjudged += sum(v.value is None for v in mine)
        records.append(SampleRecord(
            id=item.id, split=item.split, model=model, prompt_style=style.name,
            temperature=settings.temperature, completions=outs,
            scores=tuple(v.value or 0 for v in mine),
        ))
    return records, unjudged


def cot_greedy(engine: Engine, judge: Judge, items: Sequence[QAItem], max_tokens: int,
               model: str) -> tuple[list[SampleRecord], list[dict], int]:
    """Chain-of-thought prompting with greedy decoding: judged final answers, the full
    reasoning per item ({"id", "completion", "answer"}: what a reader checks the
    extraction against), and the count of unjudged answers."""
    settings = SamplingSettings(n=1, temperature=0.0, max_tokens=max_tokens)
    raw = raw_completions(engine, items, settings, COT)
    records, unjudged = judged_records(judge, items, raw, settings, model, COT)
    reasoning = [{"id": it.id, "completion": outs[0], "answer": r.completions[0]}
                 for it, outs, r in zip(items, raw, records)]
    return records, reasoning, unjudged


def no_answer_rate(records: Sequence[SampleRecord]) -> float:
    """Share of completions with an empty extracted answer (for CoT: no final answer)."""
    answers = [c for r in records for c in r.completions]
    return sum(not c for c in answers) / len(answers)


def accuracy_by_split(records: Sequence[SampleRecord]) -> dict[str, float]:
    """Per split, the mean over items of each item's share of correct completions.

    For greedy records (one completion) this is greedy accuracy; for n samples it is pass@1.
    """
    by_split: dict[str, list[float]] = {}
    for r in records:
        by_split.setdefault(r.split, []).append(sum(r.scores) / len(r.scores))
    return {split: accuracy(v) for split, v in sorted(by_split.items())}

"""The study's tables: every method against the base model, over seeds.

Pure functions from sample records to numbers (`method_table`, `inference_baselines`,
`majority_vote_accuracy`, `attribution_shares`, `transfer_gains`). `recall.claims` tests
them item by item, `recall.findings` judges the paper's findings, `recall.figures` draws
them and `recall.writeup` writes the report.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from recall.analysis import accessibility_histogram, correct_counts, pass_at_k_table
from recall.config import AnalyzeConfig
from recall.contract import QAItem, SampleRecord
from recall.metrics import repair_rates, transition_counts
from recall.sampling import accuracy_by_split, no_answer_rate

Runs = Mapping[int, tuple[Sequence[SampleRecord], Sequence[SampleRecord]]]  # seed -> (greedy, samples)


def spread(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (0 for one value) and n."""
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "n": len(arr), "values": [float(v) for v in arr]}


def greedy_ok(records: Sequence[SampleRecord], ids=None) -> dict[str, bool]:
    return {r.id: bool(r.scores[0]) for r in records
            if r.split == "test" and (ids is None or r.id in ids)}


def accuracy_on(records: Sequence[SampleRecord], ids) -> float:
    ok = greedy_ok(records, set(ids))
    if len(ok) != len(set(ids)):
        raise ValueError(f"greedy records cover {len(ok)} of {len(set(ids))} requested test items")
    return sum(ok.values()) / len(ok)


def majority_vote_accuracy(samples: Sequence[SampleRecord], k: int, split: str = "test") -> float:
    """Accuracy of the majority answer among each item's first `k` samples.

    Answers are compared after SQuAD normalisation; ties go to the answer seen first
    (`recall.metrics.majority_vote`). The winner's verdict is the judge's verdict on the
    first sample with that normalised answer (the judge's verdicts are keyed by it).
    """
    from recall.claims import majority_by_item

    return float(np.mean(list(majority_by_item(samples, k, split).values())))


def held_out_ids(items: Sequence[QAItem]) -> dict[str, list[str]]:
    """Test item ids per dataset, datasets in sorted order (Table 1's columns)."""
    out: dict[str, list[str]] = {}
    for it in sorted((it for it in items if it.split == "test"), key=lambda it: it.dataset):
        out.setdefault(it.dataset, []).append(it.id)
    return out


def inference_baselines(base_samples: Sequence[SampleRecord], cot: Sequence[SampleRecord] | None,
                        items: Sequence[QAItem], k: int) -> dict:
    """The base model's test-time baselines per test dataset: majority vote over its first
    `k` samples, and greedy chain-of-thought accuracy with the share of completions that gave
    no final answer (None when chain-of-thought was not run)."""
    out = {"majority": {}, "cot": None if cot is None else {}, "cot_no_answer": None}
    for d, ids in held_out_ids(items).items():
        wanted = set(ids)
        out["majority"][d] = majority_vote_accuracy([r for r in base_samples if r.id in wanted], k)
        if cot is not None:
            out["cot"][d] = accuracy_on(cot, ids)
    if cot is not None:
        out["cot_no_answer"] = no_answer_rate([r for r in cot if r.split == "test"])
    return out


def method_table(base: tuple[Sequence[SampleRecord], Sequence[SampleRecord]],
                 methods: Mapping[str, Runs], items: Sequence[QAItem],
                 cfg: AnalyzeConfig, n_access: int) -> dict:
    """Per method: test greedy accuracy per dataset (mean/std over seeds), gain over base,
    right->wrong breaks, train- and val-split accuracy and repair rate per bin (over seeds),
    and pass@k (mean over the seeds that were sampled). Accessibility counts the base
    model's first `n_access` samples."""
    ids = held_out_ids(items)
    datasets = list(ids)
    base_greedy, base_samples = base
    base_ok = greedy_ok(base_greedy)
    access = correct_counts(base_samples, "test", n_access)
    base_split = accuracy_by_split(base_greedy)
    out = {"datasets": datasets,
           "base": {d: accuracy_on(base_greedy, ids[d]) for d in datasets},
           "base_train_accuracy": base_split["train"],
           "base_val_accuracy": base_split.get("val"),
           "base_pass_at_k": pass_at_k_table(base_samples, "test", cfg.pass_k),
           "accessibility": {s: accessibility_histogram(base_samples, s, cfg.bin_edges, n_access)
                             for s in ("train", "test")},
           "wrong_per_bin": {b: v["wrong"] for b, v in
                             repair_rates(base_ok, base_ok, access, cfg.bin_edges).items()}}
    for method, runs in methods.items():
        row = {"accuracy": {}, "gain_abs": {}, "gain_rel": {}, "seeds": sorted(runs)}
        for d in datasets:
            accs = [accuracy_on(g, ids[d]) for g, _ in runs.values()]
            row["accuracy"][d] = spread(accs)
            row["gain_abs"][d] = spread([a - out["base"][d] for a in accs])
            row["gain_rel"][d] = spread([(a - out["base"][d]) / out["base"][d] for a in accs])
        moves = [transition_counts(base_ok, greedy_ok(g)) for g, _ in runs.values()]
        row["broken_rate"] = spread([m["broken"] / sum(base_ok.values()) for m in moves])
        row["repaired"] = spread([m["repaired"] for m in moves])
        row["train_accuracy"] = spread([accuracy_by_split(g)["train"] for g, _ in runs.values()])
        vals = [accuracy_by_split(g).get("val") for g, _ in runs.values()]
        row["val_accuracy"] = spread(vals) if None not in vals else None
        repairs = [repair_rates(base_ok, greedy_ok(g), access, cfg.bin_edges)
                   for g, _ in runs.values()]
        row["repair"] = {b: _mean_rate([r[b] for r in repairs]) for b in repairs[0]}
        sampled = [pass_at_k_table(s, "test", cfg.pass_k) for _, s in runs.values() if s]
        row["pass_at_k_seeds"] = [seed for seed, (_, s) in runs.items() if s]
        row["pass_at_k"] = ({k: float(np.mean([p[k] for p in sampled])) for k in sampled[0]}
                            if sampled else None)
        out[method] = row
    return out


def _mean_rate(rows: Sequence[dict]) -> float | None:
    rates = [r["rate"] for r in rows if r["rate"] is not None]
    return float(np.mean(rates)) if rates else None


def attribution_shares(base_greedy: Sequence[SampleRecord], full: Runs,
                       partitions: Mapping[str, Mapping[int, Sequence[SampleRecord]]]) -> dict:
    """Each partition's test gain over base as a share of the full-data GRPO gain.

    Shares use the mean full gain over its seeds; a partition's spread is over its seeds.
    """
    ids = list(greedy_ok(base_greedy))
    base = accuracy_on(base_greedy, ids)
    full_gain = spread([accuracy_on(g, ids) - base for g, _ in full.values()])
    out = {"full_gain": full_gain, "partitions": {}}
    for name, runs in partitions.items():
        gains = [accuracy_on(g, ids) - base for g in runs.values()]
        shares = [g / full_gain["mean"] if full_gain["mean"] else float("nan") for g in gains]
        out["partitions"][name] = {"gain": spread(gains), "share": spread(shares)}
    return out


def transfer_gains(base_greedy: Sequence[SampleRecord], runs: Mapping[int, Sequence[SampleRecord]],
                   source_test: Sequence[str], target_test: Sequence[str]) -> dict:
    """Greedy gain over base on the source's and the target's test items, over seeds."""
    out = {}
    for name, ids in (("source", source_test), ("target", target_test)):
        base = accuracy_on(base_greedy, ids)
        out[name] = {"base": base, "n": len(ids),
                     "gain": spread([accuracy_on(g, ids) - base for g in runs.values()])}
    return out


COT_NOT_APPLICABLE = (
    "not applicable: the toy model was pretrained on biographies and direct QA only and has "
    "never seen reasoning text, so a chain-of-thought prompt is outside what it can do. The "
    "toy profile sets cot.run: false rather than show that number; the paper profile runs it.")

def plus_minus(s: Mapping, fmt: str = "{:.3f}") -> str:
    """'mean ± std' (the std never signed)."""
    return f"{fmt.format(s['mean'])} ± {fmt.replace('+', '').format(s['std'])}"

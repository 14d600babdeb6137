"""The study's tables and findings: every method against the base model, over seeds.

Pure functions from sample records to numbers (`method_table`, `inference_baselines`,
`majority_vote_accuracy`, `attribution_shares`, `transfer_gains`), and `findings`, which
states for each of the paper's five findings whether the organism reproduces it.
`recall.figures` draws them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from recall.analysis import accessibility_histogram, correct_counts, pass_at_k_table
from recall.config import AnalyzeConfig
from recall.contract import QAItem, SampleRecord
from recall.judge.rules import normalize_answer
from recall.metrics import majority_vote, repair_rates, transition_counts
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
    correct = []
    for r in samples:
        if r.split != split:
            continue
        if len(r.completions) < k:
            raise ValueError(f"majority vote over {k} needs {k} samples; item {r.id} has "
                             f"{len(r.completions)}")
        normed = [normalize_answer(c) for c in r.completions[:k]]
        winner = majority_vote(normed)
        correct.append(r.scores[normed.index(winner)])
    if not correct:
        raise ValueError(f"no {split} samples for the majority vote")
    return float(np.mean(correct))


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
                 cfg: AnalyzeConfig) -> dict:
    """Per method: test greedy accuracy per dataset (mean/std over seeds), gain over base,
    right->wrong breaks, train-split accuracy and repair rate per bin (over seeds), and
    pass@k (mean over the seeds that were sampled)."""
    ids = held_out_ids(items)
    datasets = list(ids)
    base_greedy, base_samples = base
    base_ok = greedy_ok(base_greedy)
    access = correct_counts(base_samples, "test")
    out = {"datasets": datasets,
           "base": {d: accuracy_on(base_greedy, ids[d]) for d in datasets},
           "base_train_accuracy": accuracy_by_split(base_greedy)["train"],
           "base_pass_at_k": pass_at_k_table(base_samples, "test", cfg.pass_k),
           "accessibility": {s: accessibility_histogram(base_samples, s, cfg.bin_edges)
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


def paired_gap(table: Mapping, a: str, b: str, dataset: str) -> dict:
    """Seed-paired accuracy gap a - b on one dataset (seed i of a against seed i of b)."""
    va, vb = table[a]["accuracy"][dataset]["values"], table[b]["accuracy"][dataset]["values"]
    return spread([x - y for x, y in zip(va, vb)])


COT_NOT_APPLICABLE = (
    "not applicable: the toy model was pretrained on biographies and direct QA only and has "
    "never seen reasoning text, so a chain-of-thought prompt is outside what it can do. The "
    "toy profile sets cot.run: false rather than show that number; the paper profile runs it.")

LABELS = {"base": "base (greedy)", "majority": "majority vote", "grpo": "GRPO", "rloo": "RLOO",
          "sft": "SFT (gold)", "sft_known": "SFT, known facts only (control)", "dpo": "DPO",
          "rft": "online RFT"}


def plus_minus(s: Mapping, fmt: str = "{:.3f}") -> str:
    """'mean ± std' (the std never signed)."""
    return f"{fmt.format(s['mean'])} ± {fmt.replace('+', '').format(s['std'])}"


def findings(table: Mapping, majority: float, shares: Mapping | None, dataset: str) -> list[str]:
    """The paper's five findings, each stated plainly as reproduced or not, with numbers."""
    grpo = table["grpo"]["accuracy"][dataset]
    others = [m for m in ("sft", "dpo", "rft") if m in table]
    beats = {m: paired_gap(table, "grpo", m, dataset) for m in others}
    won = [m for m, g in beats.items() if min(g["values"]) > 0]
    out = [
        "1. **RL vs SFT, DPO and RFT on held-out facts.** GRPO " + plus_minus(grpo) + "; "
        + "; ".join(f"{LABELS[m]} {plus_minus(table[m]['accuracy'][dataset])} (paired gap "
                    f"{plus_minus(beats[m], '{:+.3f}')})" for m in others) + ". "
        + ("Reproduced: GRPO beats all three in every seed." if len(won) == len(others) else
           "Not reproduced: GRPO does not beat "
           + ", ".join(LABELS[m] for m in others if m not in won) + " in every seed"
           + (f" (it does beat {', '.join(LABELS[m] for m in won)})." if won else ".")),
    ]
    gap = grpo["mean"] - majority
    out.append(f"2. **RL vs majority vote.** Majority vote over {table['majority_k']} samples "
               f"{majority:.3f} vs greedy base {table['base'][dataset]:.3f}; GRPO {plus_minus(grpo)}. "
               + ("Reproduced: GRPO is above majority vote." if gap > 0 else
                  "Not reproduced: majority vote is at least as good as GRPO."))
    rates = [(b, r) for b, r in table["grpo"]["repair"].items() if r is not None
             and table["wrong_per_bin"][b] >= 5]
    rising = all(a[1] <= b[1] + 1e-9 for a, b in zip(rates, rates[1:]))
    overall = len(rates) > 1 and rates[-1][1] > rates[0][1]
    head = ("3. **Repair rate rises with accessibility.** GRPO repair rate per bin (bins with "
            "at least 5 base-wrong items, seed means): ")
    if len(rates) < 2:  # one bin or none cannot show a trend either way
        out.append(head + "fewer than two bins qualify. Not testable here.")
    else:
        out.append(head + ", ".join(f"{b}: {r:.2f}" for b, r in rates) + ". "
                   + ("Reproduced: it never falls as accessibility rises." if rising and overall else
                      "Partly: it rises overall but not in every step." if overall else
                      "Not reproduced: it does not rise with accessibility."))
    pk = table["base_pass_at_k"]
    k_match = next((k for k in sorted(pk) if pk[k] >= grpo["mean"]), None)
    out.append(f"4. **Post-RL greedy vs pre-RL pass@k.** Post-GRPO greedy {grpo['mean']:.3f}; "
               f"pre-RL pass@1 {pk[min(pk)]:.3f}, pass@{max(pk)} {pk[max(pk)]:.3f}. "
               + (f"The smallest k whose pre-RL pass@k ({pk[k_match]:.3f}) is at least post-RL "
                  f"greedy is {k_match}: RL moves sampled-but-not-greedy answers into greedy "
                  f"decoding." if k_match else
                  "Post-RL greedy exceeds every pre-RL pass@k measured."))
    if shares:
        parts = shares["partitions"]
        out.append(f"5. **Attribution.** Full-data GRPO gain {plus_minus(shares['full_gain'], '{:+.3f}')}; "
                   "share of it recovered by GRPO on one partition at matched size: "
                   + "; ".join(f"{n} {plus_minus(p['share'], '{:.2f}')}" for n, p in parts.items())
                   + ". The paper's inaccessible@128 subset recovers ~0.83; "
                   + _attribution_verdict(shares))
    return out + _controls(table, dataset)


def _attribution_verdict(shares: Mapping) -> str:
    full, parts = shares["full_gain"], shares["partitions"]
    if full["mean"] <= 0 or full["mean"] < full["std"]:
        return ("no verdict: the full-data gain is not clearly above zero across seeds, so "
                "shares of it are noise.")
    if "inaccessible" not in parts:
        return "no 'inaccessible' partition was run."
    if parts["inaccessible"]["share"]["mean"] >= 0.5:
        return "reproduced: the inaccessible partition recovers most of the gain."
    return ("not reproduced: RL on the facts the base model never sampled recovers little of "
            "the gain; in the organism most of them are facts it was never shown (no "
            "biography), which give no reward.")


def _controls(table: Mapping, dataset: str) -> list[str]:
    """The organism's controls, stated beside the findings: what SFT does on known facts only,
    how often each method breaks what the base got right, and the second RL algorithm."""
    lines = []
    if "sft_known" in table and "sft" in table:
        lines.append(f"- **Control: SFT on known facts only** {plus_minus(table['sft_known']['accuracy'][dataset])} "
                     f"vs SFT on all RL-train facts {plus_minus(table['sft']['accuracy'][dataset])}: "
                     "the difference is what training on facts the model cannot know costs.")
    breaks = [m for m in LABELS if isinstance(table.get(m), dict) and "broken_rate" in table[m]]
    lines.append("- **Right→wrong breaks** (share of base-right test items): "
                 + ", ".join(f"{LABELS[m]} {plus_minus(table[m]['broken_rate'])}" for m in breaks)
                 + ".")
    if "rloo" in table:
        gap = paired_gap(table, "grpo", "rloo", dataset)
        lines.append(f"- **Second RL algorithm** (RLOO, standing in for PPO): "
                     f"{plus_minus(table['rloo']['accuracy'][dataset])}, paired gap GRPO − RLOO "
                     f"{plus_minus(gap, '{:+.3f}')}: "
                     + ("the gain holds across RL algorithms." if table["rloo"]["gain_abs"][dataset]["mean"] > 0
                        else "RLOO does not gain here."))
    return lines

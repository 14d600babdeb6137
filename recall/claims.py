"""The study's claims, each tested item by item: Table 1's tests and the paper's five findings.

Every method is graded on the same test (and val) items as the base model, so each claim is
a paired comparison: `item_tests` gives, per method, the paired bootstrap over items of its
seed-mean correctness against the base model and against GRPO, and McNemar's exact test per
seed. `findings` states each of the paper's five findings as reproduced, not reproduced or
inconclusive from those tests alone (recall.significance.verdict), never from a mean.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

import numpy as np

from recall.contract import SampleRecord
from recall.judge.rules import normalize_answer
from recall.metrics import majority_vote, pass_at_k
from recall.significance import mcnemar, mean_interval, paired_bootstrap, seed_means

PAPER = {"gain_rel": 0.27, "inaccessible_share": 0.83}  # DESIGN.md: the paper's headline


def correct_by_item(records: Sequence[SampleRecord], split: str) -> dict[str, bool]:
    """Greedy correctness per item of `split`."""
    return {r.id: bool(r.scores[0]) for r in records if r.split == split}


def item_tests(base: Sequence[SampleRecord], methods: Mapping[str, Mapping[int, Sequence[SampleRecord]]],
               split: str, reference: str = "grpo") -> dict[str, dict]:
    """Per method: `vs_base` (bootstrap of seed-mean correctness minus base), `mcnemar` (one
    per seed, against base) and `vs_reference` (bootstrap of the reference minus this
    method; absent for the reference itself). `methods`: method -> seed -> greedy records."""
    base_ok = correct_by_item(base, split)
    means = {m: seed_means([correct_by_item(g, split) for g in runs.values()])
             for m, runs in methods.items()}
    base_f = {i: float(v) for i, v in base_ok.items()}
    out = {}
    for m, runs in methods.items():
        row = {"vs_base": paired_bootstrap(base_f, means[m]),
               "mcnemar": {s: mcnemar(base_ok, correct_by_item(g, split)) for s, g in runs.items()}}
        if reference in means and m != reference:
            row["vs_reference"] = paired_bootstrap(means[m], means[reference])
        out[m] = row
    return out


def majority_by_item(samples: Sequence[SampleRecord], k: int, split: str = "test") -> dict[str, bool]:
    """Whether the majority answer among each item's first `k` samples was judged correct
    (SQuAD-normalised answers; ties go to the answer seen first)."""
    out = {}
    for r in samples:
        if r.split != split:
            continue
        if len(r.completions) < k:
            raise ValueError(f"majority vote over {k} needs {k} samples; item {r.id} has "
                             f"{len(r.completions)}")
        normed = [normalize_answer(c) for c in r.completions[:k]]
        out[r.id] = bool(r.scores[normed.index(majority_vote(normed))])
    if not out:
        raise ValueError(f"no {split} samples for the majority vote")
    return out


def repair_trend(base_ok: Mapping[str, bool], runs: Sequence[Mapping[str, bool]],
                 access: Mapping[str, int]) -> dict:
    """Does repair rise with accessibility? Kendall's tau-b between the base model's correct
    count and the seed-mean repair of each base-wrong item, with its two-sided p."""
    from scipy.stats import kendalltau

    wrong = sorted(i for i, ok in base_ok.items() if not ok)
    if len(wrong) < 3 or len({access[i] for i in wrong}) < 2:
        return {"items": len(wrong), "tau": None, "p": None}
    repaired = [float(np.mean([run[i] for run in runs])) for i in wrong]
    result = kendalltau([access[i] for i in wrong], repaired)
    tau, p = float(result.statistic), float(result.pvalue)
    if np.isnan(tau):  # nothing repaired, or everything: no trend either way
        return {"items": len(wrong), "tau": None, "p": None}
    return {"items": len(wrong), "tau": tau, "p": p}


def pass_at_k_change(before: Sequence[SampleRecord], after: Sequence[SampleRecord], k: int,
                     n_boot: int = 10000) -> dict:
    """Paired bootstrap over test items of per-item pass@k after minus before."""
    def per_item(records):
        return {r.id: pass_at_k(len(r.scores), sum(r.scores), k) for r in records
                if r.split == "test"}
    return paired_bootstrap(per_item(before), per_item(after), n_boot)


def share_of_gain(base_ok: Mapping[str, bool], full: Sequence[Mapping[str, bool]],
                  part: Sequence[Mapping[str, bool]], n_boot: int = 4000, seed: int = 0) -> dict:
    """A partition's gain over base as a share of the full-data gain, with a 95% interval
    from resampling items (the same items for both gains, so the ratio stays paired)."""
    ids = sorted(base_ok)
    b = np.array([float(base_ok[i]) for i in ids])
    f = np.array([np.mean([run[i] for run in full]) for i in ids]) - b
    p = np.array([np.mean([run[i] for run in part]) for i in ids]) - b
    share = float(p.mean() / f.mean()) if f.mean() else None
    rng = np.random.default_rng(random.Random(f"share-{seed}").getrandbits(63))
    idx = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    full_gain, part_gain = f[idx].mean(axis=1), p[idx].mean(axis=1)
    ok = full_gain > 0  # a resample with no full gain has no share
    ci = (np.quantile(part_gain[ok] / full_gain[ok], [0.025, 0.975]).tolist()
          if ok.mean() > 0.975 else None)
    return {"share": share, "ci": ci, "gain": float(p.mean()), "full_gain": float(f.mean())}


def normalised_gain(base: float, after: float, base_pass_at_128: float) -> float | None:
    """(after - base) / (pass@128 - base): the share of the sampled-but-not-greedy headroom
    that training turned into greedy answers.

    >>> normalised_gain(0.5, 0.6, 0.9)
    0.25
    """
    headroom = base_pass_at_128 - base
    return round((after - base) / headroom, 12) if headroom > 0 else None


def across_bases(base: Mapping[int, Sequence[SampleRecord]],
                 runs: Mapping[int, Sequence[Sequence[SampleRecord]]], split: str = "test") -> dict:
    """One method's gain over its own base model on each pretrained base.

    `base`: greedy records of each base; `runs`: each base's trained runs (seeds). Returns
    the per-base gains (seed means), their t interval over bases, a paired bootstrap over
    items of the gain averaged over bases (item and base noise in one interval), and
    McNemar's test of each base's first run against that base."""
    from recall.significance import seed_interval

    gains, per_item, tests = {}, {}, {}
    for b in sorted(base):
        base_ok = correct_by_item(base[b], split)
        means = seed_means([correct_by_item(g, split) for g in runs[b]])
        gains[b] = float(np.mean(list(means.values())) - np.mean(list(base_ok.values())))
        for i, ok in base_ok.items():
            per_item.setdefault(i, []).append(means[i] - ok)
        tests[b] = mcnemar(base_ok, correct_by_item(runs[b][0], split))
    diff = {i: float(np.mean(v)) for i, v in per_item.items()}
    return {"gains": gains, "over_bases": seed_interval(list(gains.values())),
            "items": paired_bootstrap(dict.fromkeys(diff, 0.0), diff), "mcnemar": tests}


def accuracy_rows(base: Sequence[SampleRecord],
                  methods: Mapping[str, Mapping[int, Sequence[SampleRecord]]],
                  split: str) -> dict[str, dict[str, float]]:
    """Three headline rows for `split`: `<split>` (the base model's and each method's greedy
    accuracy over the pooled items of every dataset, methods averaged over seeds),
    `<split>_low` and `<split>_high` (its 95% item-bootstrap interval). Empty when `split`
    was not decoded. `methods`: method -> seed -> greedy records."""
    base_ok = correct_by_item(base, split)
    if not base_ok:
        return {}
    scores = {"base": {i: float(v) for i, v in base_ok.items()},
              **{m: seed_means([correct_by_item(g, split) for g in runs.values()])
                 for m, runs in methods.items()}}
    rows: dict[str, dict[str, float]] = {split: {}, f"{split}_low": {}, f"{split}_high": {}}
    for name, per_item in scores.items():
        found = mean_interval(per_item)
        rows[split][name] = found["mean"]
        rows[f"{split}_low"][name], rows[f"{split}_high"][name] = found["ci"]
    return rows


def _seed_mean(runs: Sequence[Mapping[str, float]], ids: Sequence[str]) -> dict[str, float]:
    return {i: sum(run[i] for run in runs) / len(runs) for i in ids}


def mass_moves(gold_before: Mapping[str, float], wrong_before: Mapping[str, float],
               gold_after: Sequence[Mapping[str, float]],
               wrong_after: Sequence[Mapping[str, float]]) -> dict:
    """On the base-wrong test items (those `wrong_before` holds): the change in p(gold) and
    in p(the base's wrong greedy answer) after training (seed means over `*_after`), each a
    paired bootstrap over items: the paper's redistribution claim, measured directly."""
    ids = sorted(wrong_before)
    return {"items": len(ids),
            "gold_before": sum(gold_before[i] for i in ids) / len(ids),
            "wrong_before": sum(wrong_before[i] for i in ids) / len(ids),
            "gold": paired_bootstrap({i: gold_before[i] for i in ids}, _seed_mean(gold_after, ids)),
            "wrong_answer": paired_bootstrap({i: wrong_before[i] for i in ids},
                                             _seed_mean(wrong_after, ids))}

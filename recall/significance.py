"""Item-level tests and intervals for the study's claims.

Two methods graded on the same test items are paired by item, so the claims are tested
item by item: McNemar's exact test on one run of each (the discordant items decide it), and
a paired bootstrap over items of the difference in per-item correctness averaged over
seeds, which carries seed noise and item noise in one interval. `seed_interval` is the t
interval over seeds alone, for rows whose seeds are the only replication.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

import numpy as np

ALPHA = 0.05


def mcnemar(first: Mapping[str, bool], second: Mapping[str, bool]) -> dict:
    """Exact two-sided McNemar test of two runs' greedy correctness on the same items.

    `b`: items only `first` gets right, `c`: items only `second` gets right. Under the null
    each discordant item goes either way with probability 1/2, so p = P(|B - n/2| >= |b - n/2|)
    for B ~ Binomial(b + c, 1/2). No discordant item: p = 1.

    >>> mcnemar({"a": True, "b": False, "c": False}, {"a": True, "b": True, "c": True})
    {'items': 3, 'b': 0, 'c': 2, 'p': 0.5}
    """
    from scipy.stats import binomtest

    if set(first) != set(second):
        raise ValueError(f"mcnemar: the runs cover different items ({len(first)} vs "
                         f"{len(second)}, {len(set(first) ^ set(second))} not in both)")
    b = sum(1 for i, ok in first.items() if ok and not second[i])
    c = sum(1 for i, ok in first.items() if not ok and second[i])
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"items": len(first), "b": b, "c": c, "p": p}


def seed_means(runs: Sequence[Mapping[str, bool]]) -> dict[str, float]:
    """Per-item correctness averaged over runs (seeds) that cover the same items."""
    if not runs:
        raise ValueError("seed_means of zero runs")
    items = set(runs[0])
    for run in runs[1:]:
        if set(run) != items:
            raise ValueError("seed_means: the seeds' runs cover different items")
    return {i: float(np.mean([bool(run[i]) for run in runs])) for i in sorted(items)}


def paired_bootstrap(first: Mapping[str, float], second: Mapping[str, float],
                     n_boot: int = 10000, seed: int = 0) -> dict:
    """Mean of second - first over items, its 95% percentile interval over items resampled
    with replacement, and a two-sided bootstrap p (twice the share of resampled means on the
    far side of 0, at most 1). `first`, `second`: per-item scores (0/1, or seed means)."""
    if set(first) != set(second):
        raise ValueError("paired_bootstrap: the runs cover different items")
    if not first:
        raise ValueError("paired_bootstrap over zero items")
    ids = sorted(first)
    diff = np.array([second[i] - first[i] for i in ids], dtype=float)
    rng = np.random.default_rng(random.Random(f"bootstrap-{seed}").getrandbits(63))
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    low, high = np.quantile(means, [ALPHA / 2, 1 - ALPHA / 2])
    below, above = float(np.mean(means <= 0)), float(np.mean(means >= 0))
    return {"items": len(ids), "diff": float(diff.mean()), "ci": [float(low), float(high)],
            "p": min(1.0, 2 * min(below, above))}


def mean_interval(scores: Mapping[str, float], n_boot: int = 10000, seed: int = 0) -> dict:
    """Mean of per-item scores (0/1, or seed means: an accuracy) and its 95% percentile
    interval over items resampled with replacement (`paired_bootstrap` against zero).

    >>> mean_interval({"a": 1.0, "b": 1.0})
    {'items': 2, 'mean': 1.0, 'ci': [1.0, 1.0]}
    """
    test = paired_bootstrap(dict.fromkeys(scores, 0.0), scores, n_boot, seed)
    return {"items": test["items"], "mean": test["diff"], "ci": test["ci"]}


def seed_interval(values: Sequence[float]) -> dict:
    """Mean and 95% t interval over seeds; one seed has no interval (None).

    >>> seed_interval([0.5, 0.5])["ci"]
    [0.5, 0.5]
    """
    from scipy.stats import t

    if not values:
        raise ValueError("seed_interval of zero values")
    mean = float(np.mean(values))
    if len(values) < 2:
        return {"mean": mean, "ci": None, "n": 1}
    half = float(t.ppf(1 - ALPHA / 2, len(values) - 1) * np.std(values, ddof=1)
                 / np.sqrt(len(values)))
    return {"mean": mean, "ci": [mean - half, mean + half], "n": len(values)}


def verdict(test: Mapping, direction: int = 1) -> str:
    """A claim "second beats first" (direction 1) or "... is below first" (-1), judged from a
    paired bootstrap: reproduced when the 95% interval lies on the claimed side of 0, not
    reproduced when it lies on the other side, inconclusive when it covers 0."""
    low, high = (direction * x for x in test["ci"])
    low, high = min(low, high), max(low, high)
    if low > 0:
        return "reproduced"
    if high < 0:
        return "not reproduced"
    return "inconclusive"

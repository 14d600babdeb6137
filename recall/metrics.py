"""The study's metrics as pure functions, each checked against hand-computed values in tests."""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import numpy as np


def accuracy(correct: Sequence[float]) -> float:
    """Mean correctness. `correct`: one 0/1 per item (greedy), or each item's share of
    correct samples (then the result is pass@1). Empty input is an error, not 0."""
    if len(correct) == 0:
        raise ValueError("accuracy of zero items is undefined")
    return float(np.mean(np.asarray(correct, dtype=float)))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): P(at least one of k draws without replacement
    from n samples, c of them correct, is correct) = 1 - C(n-c, k) / C(n, k).

    >>> pass_at_k(4, 1, 2)
    0.5
    """
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and k >= 1, got n={n} c={c} k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got n={n}")
    if n - c < k:
        return 1.0
    # Product form avoids the huge binomials of C(128, 64).
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: Sequence[tuple[int, int]], ks: Sequence[int]) -> dict[int, float]:
    """Mean pass@k over items. `counts`: (n samples, c correct) per item."""
    if not counts:
        raise ValueError("pass@k over zero items is undefined")
    return {k: float(np.mean([pass_at_k(n, c, k) for n, c in counts])) for k in ks}


def bin_labels(edges: Sequence[int]) -> list[str]:
    """Labels of accessibility bins from their upper edges.

    >>> bin_labels([0, 1, 2, 4, 8])
    ['0', '1', '2', '3-4', '5-8']
    """
    labels, lower = [], 0
    for edge in edges:
        labels.append(str(edge) if lower >= edge else f"{lower}-{edge}")
        lower = edge + 1
    return labels


def accessibility_bin(count: int, edges: Sequence[int]) -> str:
    """The bin label of an item with `count` correct samples (e.g. out of 128).

    >>> accessibility_bin(3, [0, 1, 2, 4, 8])
    '3-4'
    """
    for edge, label in zip(edges, bin_labels(edges)):
        if count <= edge:
            return label
    raise ValueError(f"accessibility count {count} exceeds the last bin edge {edges[-1]}")


def repair_rates(base: Mapping[str, bool], after: Mapping[str, bool],
                 accessibility: Mapping[str, int], edges: Sequence[int]) -> dict[str, dict]:
    """Per accessibility bin: of items the base got wrong greedily, the share right after training.

    `base`, `after`: greedy correctness by item id. `accessibility`: pre-training correct
    count by item id. Returns {bin: {"wrong": n, "repaired": r, "rate": r/n or None}}; a bin
    with no wrong items has rate None, not 0.
    """
    missing = set(base) - set(after) | set(base) - set(accessibility)
    if missing:
        raise ValueError(f"repair_rates: {len(missing)} items lack an after/accessibility value, "
                         f"e.g. {sorted(missing)[:3]}")
    out = {label: {"wrong": 0, "repaired": 0, "rate": None} for label in bin_labels(edges)}
    for item_id, ok in base.items():
        if ok:
            continue
        row = out[accessibility_bin(accessibility[item_id], edges)]
        row["wrong"] += 1
        row["repaired"] += int(bool(after[item_id]))
    for row in out.values():
        if row["wrong"]:
            row["rate"] = row["repaired"] / row["wrong"]
    return out


def transition_counts(base: Mapping[str, bool], after: Mapping[str, bool]) -> dict[str, int]:
    """How greedy correctness moved: repaired (wrong->right) and broken (right->wrong)."""
    return {
        "repaired": sum(1 for i, ok in base.items() if not ok and after[i]),
        "broken": sum(1 for i, ok in base.items() if ok and not after[i]),
        "kept_right": sum(1 for i, ok in base.items() if ok and after[i]),
        "kept_wrong": sum(1 for i, ok in base.items() if not ok and not after[i]),
    }


def majority_vote(normalised_answers: Sequence[str]) -> str:
    """Most frequent answer; ties go to the answer seen first, so the result is deterministic.

    >>> majority_vote(["b", "a", "a", "b", "c"])
    'b'
    """
    if not normalised_answers:
        raise ValueError("majority vote over zero answers")
    counts = Counter(normalised_answers)
    best = max(counts.values())
    return next(a for a in normalised_answers if counts[a] == best)

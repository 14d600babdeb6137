"""The study's analyses over sample records: accuracy, pass@k, accessibility, repair rate.

Pure functions from records to tables; `write_plots` turns the tables into DVC plot data
and PNG figures (logged to MLflow by the stage).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

from recall.config import AnalyzeConfig
from recall.contract import SampleRecord
from recall.metrics import accessibility_bin, bin_labels, mean_pass_at_k, repair_rates, transition_counts
from recall.sampling import accuracy_by_split


def _by_split(records: Sequence[SampleRecord], split: str) -> dict[str, SampleRecord]:
    return {r.id: r for r in records if r.split == split}


def correct_counts(records: Sequence[SampleRecord], split: str,
                   limit: int | None = None) -> dict[str, int]:
    """Accessibility: correct samples per item of `split`, among its first `limit` samples
    (all when None). pass@k may draw more samples (256) than accessibility counts (128);
    an item with fewer than `limit` samples is an error, not a smaller count."""
    recs = _by_split(records, split)
    if limit is not None:
        short = [(i, len(r.scores)) for i, r in recs.items() if len(r.scores) < limit]
        if short:
            raise ValueError(f"accessibility counts the first {limit} samples, but {len(short)} "
                             f"{split} items have fewer, e.g. {short[0][0]} with {short[0][1]}")
    return {i: sum(r.scores[:limit]) for i, r in recs.items()}


def pass_at_k_table(records: Sequence[SampleRecord], split: str, ks: Sequence[int]) -> dict[int, float]:
    """Mean unbiased pass@k over the items of `split`. A k above an item's sample count
    raises (naming both), never drops out of the table."""
    recs = list(_by_split(records, split).values())
    if not recs:
        raise ValueError(f"pass@k: no {split} sample records")
    fewest = min(recs, key=lambda r: len(r.scores))
    over = [k for k in ks if k > len(fewest.scores)]
    if over:
        raise ValueError(f"pass@k for k={over} needs at least {max(over)} samples per item; "
                         f"{split} item {fewest.id} has {len(fewest.scores)} "
                         "(sampling.pass_k_samples sets the test split's)")
    return mean_pass_at_k([(len(r.scores), sum(r.scores)) for r in recs], ks)


def accessibility_histogram(records: Sequence[SampleRecord], split: str,
                            edges: Sequence[int], limit: int | None = None) -> dict[str, int]:
    hist = dict.fromkeys(bin_labels(edges), 0)
    for count in correct_counts(records, split, limit).values():
        hist[accessibility_bin(count, edges)] += 1
    return hist


def compare(base_greedy: Sequence[SampleRecord], base_samples: Sequence[SampleRecord],
            after_greedy: Sequence[SampleRecord], after_samples: Sequence[SampleRecord],
            cfg: AnalyzeConfig, n_access: int, split: str = "test") -> dict:
    """Everything the report needs for one trained method against the base model;
    accessibility counts the base model's first `n_access` samples."""
    base_ok = {i: bool(r.scores[0]) for i, r in _by_split(base_greedy, split).items()}
    after_ok = {i: bool(r.scores[0]) for i, r in _by_split(after_greedy, split).items()}
    if set(base_ok) != set(after_ok):
        raise ValueError(f"base and trained greedy runs cover different {split} items "
                         f"({len(base_ok)} vs {len(after_ok)})")
    access = correct_counts(base_samples, split, n_access)
    base_acc = accuracy_by_split(base_greedy)
    after_acc = accuracy_by_split(after_greedy)
    gain = after_acc[split] - base_acc[split]
    return {
        "accuracy": {"base": base_acc, "after": after_acc, "gain_abs": gain,
                     "gain_rel": gain / base_acc[split] if base_acc[split] else None},
        "pass_at_k": {"base": pass_at_k_table(base_samples, split, cfg.pass_k),
                      "after": pass_at_k_table(after_samples, split, cfg.pass_k)},
        "repair": repair_rates(base_ok, after_ok, access, cfg.bin_edges),
        "transitions": transition_counts(base_ok, after_ok),
        "accessibility": {s: accessibility_histogram(base_samples, s, cfg.bin_edges, n_access)
                          for s in ("train", "test")},
    }


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_plots(result: Mapping, method: str, plots_dir: Path) -> list[Path]:
    """CSV data for `dvc plots` and PNG figures for MLflow; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pk = result["pass_at_k"]
    ks = sorted(pk["base"])
    write_csv(plots_dir / "pass_at_k.csv", ["k", "base", method],
               [[k, pk["base"][k], pk["after"][k]] for k in ks])
    repair = result["repair"]
    write_csv(plots_dir / "repair_rate.csv", ["bin", "repair_rate", "wrong", "repaired"],
               [[b, "" if v["rate"] is None else v["rate"], v["wrong"], v["repaired"]]
                for b, v in repair.items()])
    hist = result["accessibility"]
    write_csv(plots_dir / "accessibility.csv", ["bin", "train", "test"],
               [[b, hist["train"][b], hist["test"][b]] for b in hist["test"]])

    figures = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ks, [pk["base"][k] for k in ks], marker="o", label="base")
    ax.plot(ks, [pk["after"][k] for k in ks], marker="o", label=method)
    ax.set(xscale="log", xlabel="k", ylabel="pass@k (test)", title="pass@k before and after")
    ax.legend()
    figures.append(save_figure(fig, plots_dir / "pass_at_k.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = list(repair)
    ax.bar(labels, [repair[b]["rate"] or 0.0 for b in labels])
    for i, b in enumerate(labels):
        ax.annotate(f"n={repair[b]['wrong']}", (i, repair[b]["rate"] or 0.0), ha="center",
                    va="bottom", fontsize=7)
    ax.set(xlabel="pre-RL accessibility (correct of samples)", ylabel="repair rate",
           title=f"Repair rate of base-wrong test items ({method})", ylim=(0, 1.05))
    figures.append(save_figure(fig, plots_dir / "repair_rate.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.4
    for j, split in enumerate(("train", "test")):
        ax.bar([i + (j - 0.5) * width for i in range(len(hist[split]))],
               list(hist[split].values()), width=width, label=split)
    ax.set_xticks(range(len(hist["test"])), list(hist["test"]))
    ax.set(xlabel="correct of samples (base model)", ylabel="items", title="Accessibility")
    ax.legend()
    figures.append(save_figure(fig, plots_dir / "accessibility.png"))
    return figures


def save_figure(fig, path: Path) -> Path:
    """Write a figure as PNG (the size every recall figure uses) and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path

"""The study's figures: CSV data for `dvc plots` and PNGs for MLflow and the report.

Each figure is written twice: a CSV that dvc.yaml declares as a plot, and a PNG that the
report (recall.writeup) embeds and the analyze stage logs to MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from recall.analysis import save_figure, write_csv
from recall.findings import LABELS


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_study_plots(table: Mapping, dynamics: Sequence[Mapping], shares: Mapping | None,
                      plots: Path) -> list[Path]:
    """pass@k per method, repair rate per bin per method, training dynamics, attribution."""
    plt = _plt()
    methods = [m for m in LABELS if m in table and isinstance(table[m], dict) and "repair" in table[m]]
    ks = sorted(table["base_pass_at_k"])
    sampled = [m for m in methods if table[m]["pass_at_k"]]
    write_csv(plots / "study_pass_at_k.csv", ["k", "base", *sampled],
         [[k, table["base_pass_at_k"][k], *[table[m]["pass_at_k"][k] for m in sampled]] for k in ks])
    bins = list(table["wrong_per_bin"])
    write_csv(plots / "study_repair_rate.csv", ["bin", "wrong", *methods],
         [[b, table["wrong_per_bin"][b], *["" if table[m]["repair"][b] is None
                                           else table[m]["repair"][b] for m in methods]]
          for b in bins])
    write_csv(plots / "dynamics.csv", ["method", "seed", "progress", "split", "accuracy"],
         [[r["method"], r["seed"], r["progress"], r["split"], r["accuracy"]] for r in dynamics])
    figures = []
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [table["base_pass_at_k"][k] for k in ks], "k--", marker="o", label="base")
    for m in sampled:
        ax.plot(ks, [table[m]["pass_at_k"][k] for k in ks], marker=".", label=LABELS[m])
    ax.set(xscale="log", xlabel="k", ylabel="pass@k (test)", title="pass@k before and after")
    ax.legend(fontsize=7)
    figures.append(save_figure(fig, plots / "study_pass_at_k.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        ax.bar([i + j * width for i in range(len(bins))],
               [table[m]["repair"][b] or 0.0 for b in bins], width=width, label=LABELS[m])
    ax.set_xticks([i + 0.4 for i in range(len(bins))], bins, fontsize=7)
    ax.set(xlabel="pre-RL accessibility (correct of samples)", ylabel="repair rate",
           title="Repair rate of base-wrong test items", ylim=(0, 1.05))
    ax.legend(fontsize=7)
    figures.append(save_figure(fig, plots / "study_repair_rate.png"))

    figures.append(_dynamics_figure(table, dynamics, methods, plots / "dynamics.png"))

    if shares:
        names = list(shares["partitions"])
        write_csv(plots / "attribution.csv", ["partition", "share", "std"],
             [[n, shares["partitions"][n]["share"]["mean"], shares["partitions"][n]["share"]["std"]]
              for n in names])
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.bar(names, [shares["partitions"][n]["share"]["mean"] for n in names],
               yerr=[shares["partitions"][n]["share"]["std"] for n in names], capsize=4)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set(ylabel="share of full-data GRPO gain", title="Data attribution (matched size)")
        figures.append(save_figure(fig, plots / "attribution.png"))
    return figures


def _dynamics_figure(table: Mapping, dynamics: Sequence[Mapping], methods: Sequence[str],
                     path: Path) -> Path:
    """Greedy train-, val- and test-split accuracy over training progress, seed means;
    progress 0 is the base model. Checkpoints are chosen on the val panel."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharey=True)
    bases = {"train": table["base_train_accuracy"], "val": table.get("base_val_accuracy"),
             "test": table["base"][table["datasets"][0]]}
    for ax, split in zip(axes, ("train", "val", "test")):
        base = bases[split]
        for m in methods:
            rows = [r for r in dynamics if r["method"] == m and r["split"] == split]
            points = sorted({r["progress"] for r in rows})
            means = [sum(r["accuracy"] for r in rows if r["progress"] == p)
                     / sum(1 for r in rows if r["progress"] == p) for p in points]
            if points:
                xs, ys = ([0.0, *points], [base, *means]) if base is not None else (points, means)
                ax.plot(xs, ys, marker=".", label=LABELS[m])
        ax.set(xlabel="training progress", ylabel=f"greedy accuracy ({split})", title=split)
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def write_latent_plot(before: Mapping[str, float] | None, after: Mapping[str, float] | None,
                      exposures: Mapping[str, int], ids: Sequence[str], plots: Path) -> list[Path]:
    """p(gold) per item before and after GRPO (plots/p_gold.csv, a DVC scatter of log10
    values) and its histogram per exposure band (plots/p_gold.png). Without p(gold)
    (latent.run off) both say so rather than go missing."""
    import math

    from recall.latent import BANDS, band_of

    plt = _plt()
    rows = [[i, band_of(exposures[i]) if i in exposures else "",
             math.log10(max(before[i], 1e-30)),
             "" if after is None or i not in after else math.log10(max(after[i], 1e-30))]
            for i in ids if before is not None and i in before]
    write_csv(plots / "p_gold.csv", ["id", "band", "log10_p_before", "log10_p_after"], rows)
    fig, axes = plt.subplots(1, len(BANDS), figsize=(13, 3.2), sharey=True)
    for ax, (band, _, _) in zip(axes, BANDS):
        mine = [r for r in rows if r[1] == band]
        bins = [x / 2 for x in range(-24, 1)]
        ax.hist([r[2] for r in mine], bins=bins, alpha=0.6, color="grey", label="base")
        if after is not None:
            ax.hist([r[3] for r in mine if r[3] != ""], bins=bins, alpha=0.6, label="GRPO")
        ax.axvline(math.log10(1 / 128), color="k", lw=0.8, ls="--")
        ax.set(title=f"{band} (n={len(mine)})", xlabel="log10 p(gold)")
    axes[0].set_ylabel("RL-train items")
    if rows:
        axes[0].legend(fontsize=7)
    else:
        fig.suptitle("p(gold) not measured (latent.run is off, or real data: no exposure)")
    return [save_figure(fig, plots / "p_gold.png")]

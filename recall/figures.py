"""The study's figures and report: CSV data for `dvc plots`, PNGs for MLflow, one markdown.

Each figure is written twice: a CSV that dvc.yaml declares as a plot, and a PNG that the
report embeds and the analyze stage logs to MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from recall.analysis import save_figure, write_csv
from recall.environment import environment_markdown
from recall.prompts import COT
from recall.report import COT_NOT_APPLICABLE, LABELS, plus_minus


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
    """Greedy train- and test-split accuracy over training progress, seed means; progress 0
    is the base model."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, split in zip(axes, ("train", "test")):
        base = table["base_train_accuracy"] if split == "train" else table["base"][table["datasets"][0]]
        for m in methods:
            rows = [r for r in dynamics if r["method"] == m and r["split"] == split]
            points = sorted({r["progress"] for r in rows})
            means = [sum(r["accuracy"] for r in rows if r["progress"] == p)
                     / sum(1 for r in rows if r["progress"] == p) for p in points]
            ax.plot([0.0, *points], [base, *means], marker=".", label=LABELS[m])
        ax.set(xlabel="training progress", ylabel=f"greedy accuracy ({split})", title=split)
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)



def _baseline_row(label: str, accs: Mapping | None, table: Mapping) -> str:
    """A Table 1 row of a test-time baseline on the base model: one value, no seed spread."""
    d, base = table["datasets"], table["base"]
    if accs is None:
        return f"| {label} | - | " + " | ".join("n/a | - | -" for _ in d) + " | - | - |"
    return (f"| {label} | - | " + " | ".join(f"{accs[x]:.3f} | {accs[x] - base[x]:+.3f} | "
                                            f"{(accs[x] - base[x]) / base[x]:+.1%}" for x in d)
            + " | - | - |")


def _cot_note(baselines: Mapping) -> str:
    if baselines["cot"] is None:
        return "Chain-of-thought: " + COT_NOT_APPLICABLE
    return (f"Chain-of-thought: greedy, prompt {COT.name}/{COT.version}; the answer is the line "
            f"after the last \"answer :\", and {baselines['cot_no_answer']:.1%} of completions "
            "gave none (graded wrong; runs/base/cot_reasoning.jsonl has every completion).")


def study_markdown(table: Mapping, baselines: Mapping, shares: Mapping | None,
                   transfer: Mapping | None, lines_found: Sequence[str], attribution: Mapping | None,
                   figures: Sequence[Path], judge: Mapping | None = None,
                   env: Mapping[str, str] | None = None) -> str:
    """The report; `baselines` is `recall.report.inference_baselines`'s table and `env`
    `recall.environment.environment()`, printed under the title."""
    d = table["datasets"]
    head = "| method | seeds | " + " | ".join(f"{x}: accuracy | gain (abs) | gain (rel)" for x in d)
    out = ["# recall: the study", "", *([environment_markdown(env)] if env else []),
           "## Table 1: greedy accuracy on held-out facts (test)", "",
           head + " | right→wrong (of base-right) | train-split accuracy |",
           "|" + "---|" * (2 + 3 * len(d) + 2),
           "| base | - | " + " | ".join(f"{table['base'][x]:.3f} | - | -" for x in d)
           + f" | - | {table['base_train_accuracy']:.3f} |",
           _baseline_row(f"majority vote @{table['majority_k']} (base)", baselines["majority"],
                         table),
           _baseline_row("chain-of-thought (base)", baselines["cot"], table)]
    for m in LABELS:
        row = table.get(m)
        if not isinstance(row, dict) or "accuracy" not in row:
            continue
        cells = " | ".join(f"{plus_minus(row['accuracy'][x])} | {plus_minus(row['gain_abs'][x], '{:+.3f}')} | "
                           f"{row['gain_rel'][x]['mean']:+.1%}" for x in d)
        label = LABELS[m] + (f" (reward: {row['reward']})" if "reward" in row else "")
        out.append(f"| {label} | {len(row['seeds'])} | {cells} | "
                   f"{plus_minus(row['broken_rate'], '{:.3f}')} | {plus_minus(row['train_accuracy'])} |")
    out += ["", "Mean ± sample standard deviation over post-training seeds on one pretrained "
            "base. Majority vote is over the base model's first samples (SQuAD-normalised; "
            "ties go to the answer seen first). " + _cot_note(baselines), "",
            "## What the organism says", "", *lines_found, ""]
    if transfer:
        t = transfer
        out += ["## Cross-dataset transfer", "",
                f"GRPO trained on {t['by']} {t['source_names']} only ({t['source_train']} items): "
                f"gain on its own test items {plus_minus(t['source']['gain'], '{:+.3f}')} "
                f"(base {t['source']['base']:.3f}, n={t['source']['n']}); on {t['target_names']} "
                f"test items {plus_minus(t['target']['gain'], '{:+.3f}')} "
                f"(base {t['target']['base']:.3f}, n={t['target']['n']}).", ""]
    if attribution:
        out += ["## Data attribution", "",
                f"Matched size {attribution['size']} items per partition (available: "
                + ", ".join(f"{k} {v}" for k, v in attribution["available"].items()) + ").", ""]
    if judge:
        out += _judge_lines(judge)
    out += ["## Figures", "", *[f"![{f.stem}](../plots/{f.name})" for f in figures], ""]
    return "\n".join(out)


def _judge_lines(judge: Mapping) -> list[str]:
    """The judge's measured error rates (stage `judge_reliability`), which every accessibility
    count, repair rate and reward inherits."""
    groups = [(name, g) for name, g in judge.items() if isinstance(g, Mapping)]
    rate = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    return ["## The judge's errors", "",
            f"Judge `{judge['judge']}` on distinct sampled test answers, against their labels "
            "(stage `judge_reliability`):", "",
            *[f"- {name}: agreement {rate(g['agreement'])}, false positives "
              f"{rate(g['false_positive_rate'])}, false negatives "
              f"{rate(g['false_negative_rate'])} (n={g['n']})" for name, g in groups], "",
            "Accessibility is a count of judged-correct samples, so a false positive on any of "
            "an item's wrong answers moves a fact the model cannot know out of the "
            "inaccessible bin; read the low bins and the attribution partitions with this "
            "rate in mind.", ""]

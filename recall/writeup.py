"""The study's report, reports/analysis.md: Table 1 and its item-level tests, the chance
floor, the gain against the paper's, the five findings, pass@k, repair by bin, attribution,
transfer, the judge's errors, stage times and the figures.

Pure rendering: every number comes from `recall.report`, `recall.claims` and
`recall.ground_truth` (assembled by the analyze stage); nothing is computed here but text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from recall.environment import environment_markdown
from recall.findings import LABELS, ci_text
from recall.prompts import COT
from recall.report import COT_NOT_APPLICABLE, plus_minus

CHANCE_LIMIT = 0.05  # issue 18: at most 5% of items accessible by luck


def _baseline_row(label: str, accs: Mapping | None, table: Mapping) -> str:
    """A Table 1 row of a test-time baseline on the base model: one value, no seed spread."""
    d, base = table["datasets"], table["base"]
    if accs is None:
        return f"| {label} | - | " + " | ".join("n/a | - | -" for _ in d) + " | - | - | - |"
    return (f"| {label} | - | " + " | ".join(f"{accs[x]:.3f} | {accs[x] - base[x]:+.3f} | "
                                            f"{(accs[x] - base[x]) / base[x]:+.1%}" for x in d)
            + " | - | - | - |")


def _cot_note(baselines: Mapping) -> str:
    if baselines["cot"] is None:
        return "Chain-of-thought: " + COT_NOT_APPLICABLE
    return (f"Chain-of-thought: greedy, prompt {COT.name}/{COT.version}; the answer is the line "
            f"after the last \"answer :\", and {baselines['cot_no_answer']:.1%} of completions "
            "gave none (graded wrong; runs/base/cot_reasoning.jsonl has every completion).")


def study_markdown(table: Mapping, baselines: Mapping, transfer: Mapping | None,
                   lines_found: Sequence[str], attribution: Mapping | None,
                   figures: Sequence[Path], judge: Mapping | None = None,
                   env: Mapping[str, str] | None = None, evidence: Mapping | None = None) -> str:
    """The report; `baselines` is `recall.report.inference_baselines`'s table, `env`
    `recall.environment.environment()` (printed under the title) and `evidence` the item-level
    tests, chance floor, gains, attribution shares and stage times (see pipelines/analyze.py)."""
    evidence = evidence or {}
    d = table["datasets"]
    head = "| method | seeds | " + " | ".join(f"{x}: accuracy | gain (abs) | gain (rel)" for x in d)
    out = ["# recall: the study", "", *([environment_markdown(env)] if env else []),
           "## Table 1: greedy accuracy on held-out facts (test)", "",
           head + " | val accuracy | right→wrong (of base-right) | train-split accuracy |",
           "|" + "---|" * (2 + 3 * len(d) + 3),
           "| base | - | " + " | ".join(f"{table['base'][x]:.3f} | - | -" for x in d)
           + f" | {_val(table.get('base_val_accuracy'))} | - | {table['base_train_accuracy']:.3f} |",
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
        val = plus_minus(row["val_accuracy"]) if row.get("val_accuracy") else "-"
        out.append(f"| {label} | {len(row['seeds'])} | {cells} | {val} | "
                   f"{plus_minus(row['broken_rate'], '{:.3f}')} | {plus_minus(row['train_accuracy'])} |")
    out += ["", "Mean ± sample standard deviation over post-training seeds on one pretrained "
            "base. Majority vote is over the base model's first samples (SQuAD-normalised; "
            "ties go to the answer seen first). " + _cot_note(baselines), ""]
    out += _tests_section(evidence.get("tests"), table)
    out += _bases_section(evidence.get("bases"))
    out += _gain_section(evidence.get("gains"))
    out += _chance_section(evidence.get("chance"))
    out += _latent_section(evidence.get("latent"))
    out += _mass_section(evidence.get("mass_moves"), evidence.get("exact_pass_at_k"), table)
    out += ["## What the organism says", "", *lines_found, ""]
    out += _pass_at_k_section(table)
    out += _repair_section(table)
    if transfer:
        t = transfer
        out += ["## Cross-dataset transfer", "",
                f"GRPO trained on {t['by']} {t['source_names']} only ({t['source_train']} items): "
                f"gain on its own test items {plus_minus(t['source']['gain'], '{:+.3f}')} "
                f"(base {t['source']['base']:.3f}, n={t['source']['n']}); on {t['target_names']} "
                f"test items {plus_minus(t['target']['gain'], '{:+.3f}')} "
                f"(base {t['target']['base']:.3f}, n={t['target']['n']}).", ""]
    if attribution:
        out += _attribution_section(attribution, evidence.get("shares", {}))
    if judge:
        out += _judge_lines(judge)
    out += _stage_section(evidence.get("stages"))
    out += ["## Figures", "", *[f"![{f.stem}](../plots/{f.name})" for f in figures], ""]
    return "\n".join(out)


def _val(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mcnemar_text(tests: Mapping) -> str:
    return ", ".join(f"{t['p']:.3g} ({t['c']}↑ {t['b']}↓)" for _, t in sorted(tests.items()))


def _tests_section(tests: Mapping | None, table: Mapping) -> list[str]:
    """Table 1's item-level tests on test and val items."""
    if not tests:
        return []
    out = ["## Table 1, item by item: paired tests against the base model and GRPO", "",
           "| method | split | gain over base [95% CI], p | McNemar p per seed (items fixed↑ broken↓) "
           "| GRPO − method [95% CI], p |", "|---|---|---|---|---|"]
    for m in LABELS:
        for split in ("test", "val"):
            row = tests.get(split, {}).get(m)
            if row is None:
                continue
            ref = ci_text(row["vs_reference"]) if "vs_reference" in row else "-"
            out.append(f"| {LABELS[m]} | {split} | {ci_text(row['vs_base'])} | "
                       f"{_mcnemar_text(row['mcnemar'])} | {ref} |")
    n_test = next(iter(tests["test"].values()))["vs_base"]["items"] if tests.get("test") else 0
    out += ["", f"Each interval is a paired bootstrap over items ({n_test} test items; 10,000 "
            "resamples) of the difference in per-item correctness, each method's averaged over "
            "its seeds, so it carries item and seed noise; p is two-sided. McNemar's exact test "
            "compares one seed's greedy answers with the base model's on the same items. All "
            "seeds start from one pretrained base.", ""]
    return out


def _bases_section(bases: Mapping | None) -> list[str]:
    """The headline rows over pretrained bases: each base's own gain, the t interval over
    bases and the item-level bootstrap of the gain averaged over bases."""
    if not bases:
        return []
    out = ["## Table 1 over pretrained bases (test)", "",
           "| method | bases | gain on each base | mean gain [95% t interval over bases] | "
           "gain averaged over bases, per item [95% CI], p | McNemar p on each base |",
           "|---|---|---|---|---|---|"]
    for m, r in bases["methods"].items():
        over = r["over_bases"]
        ci = "-" if over["ci"] is None else f"[{over['ci'][0]:+.3f}, {over['ci'][1]:+.3f}]"
        out.append(f"| {LABELS[m]} | {len(r['gains'])} | "
                   + ", ".join(f"{b}: {g:+.3f}" for b, g in r["gains"].items())
                   + f" | {over['mean']:+.3f} {ci} | {ci_text(r['items'])} | "
                   + ", ".join(f"{t['p']:.3g}" for t in r["mcnemar"].values()) + " |")
    accs = ", ".join(f"{b}: {a:.3f}" for b, a in bases["base_accuracy"].items())
    return out + ["", f"Bases are pretraining seeds on one world (base greedy test accuracy "
                  f"{accs}); base {bases['first']} is the study's, with its "
                  f"{bases['seeds_first']} post-training seeds averaged, the others one seed "
                  "each. The interval over bases is a t interval on as many gains as bases.", ""]


def _gain_section(gains: Mapping | None) -> list[str]:
    if not gains:
        return []
    norm = gains["normalised"]
    return ["## The gain against the paper's", "",
            "| | organism (GRPO, test) | paper |", "|---|---|---|",
            f"| relative gain (post − base) / base | {gains['relative']:+.1%} | +27% (average) |",
            f"| normalised gain (post − base) / (pass@{gains['k']} − base) | "
            + ("n/a" if norm is None else f"{norm:+.3f}") + " | not stated |",
            f"| base greedy → post greedy | {gains['base']:.3f} → {gains['after']:.3f} | |",
            f"| base pass@{gains['k']} | {gains['pass_at_k']:.3f} | |", ""]


def _chance_section(chance: Mapping | None) -> list[str]:
    """The share of accessibility that is luck, simulated from the world and measured on the
    base model, with the world's stored / not stored split of RL-train."""
    if not chance:
        return ["## The chance floor", "", "Not measured: real data has no ground truth of "
                "which facts a model never saw.", ""]
    measured = chance["measured"]
    verdict = ("within" if measured["share"] <= CHANCE_LIMIT else "ABOVE")
    guessers = "; ".join(f"{g['guesser']} guesser {g['share']:.1%} ({g['hit']} of {g['items']})"
                         for g in chance["simulated"])
    split = chance["split"]
    return ["## The chance floor", "",
            f"A blind guesser that knows everything pretraining shows except the person, "
            f"drawing {chance['n']} answers per item for the people the model never saw: "
            f"{guessers}. The base model itself, on the {measured['items']} RL-train facts "
            f"whose person it never saw: {measured['hit']} have at least one judged-correct "
            f"sample of {chance['n']} ({measured['share']:.1%}), {verdict} the "
            f"{CHANCE_LIMIT:.0%} limit; that count includes the judge's false positives.", "",
            "RL-train facts by ground truth: "
            + ", ".join(f"{k.replace('_', ' ')} {len(v)}" for k, v in split.items())
            + f" (stored = biography shown at least once; accessible = at least one correct "
            f"sample of {chance['n']}).", ""]


def _latent_section(latent: Mapping | None) -> list[str]:
    """p(gold) by exposure band before (and after) GRPO, and the latent-knowledge labels."""
    if not latent:
        return ["## Latent knowledge, measured exactly", "", "Not measured: `latent.run` is "
                "off, or the data has no ground truth of exposure (real datasets).", ""]
    out = ["## Latent knowledge, measured exactly", "",
           f"p(gold): the base model's teacher-forced probability of a gold answer and its end "
           f"(summed over aliases; a lower bound on what the judge accepts), for the "
           f"{latent['items']} RL-train items, counted by how often the world showed the fact "
           f"(mean p(gold) {latent['mean_before']:.3f}"
           + (f"; after GRPO {latent['mean_after']:.3f}" if latent["mean_after"] is not None
              else "") + ")."]
    for name in ("before", "after"):
        table = latent[name]
        if table is None:
            continue
        cols = list(next(iter(table.values())))
        out += ["", f"**{'Base model' if name == 'before' else 'After GRPO'}**", "",
                "| exposure | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        out += [f"| {band} | " + " | ".join(str(row[c]) for c in cols) + " |"
                for band, row in table.items()]
    labels = latent["by_band"]
    names = list(next(iter(labels.values())))
    out += ["", f"Labels from p(gold) before training: *absent* at or below "
            f"{latent['absent_at']:.2e} (the {latent['quantile']:.0%} quantile over never-shown "
            "facts), *tail* above that and below 1/128, *accessible* from 1/128 up.", "",
            "| exposure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    out += [f"| {band} | " + " | ".join(str(row[n]) for n in names) + " |"
            for band, row in labels.items()]
    return out + [""]


def _mass_section(moves: Mapping | None, exact: Mapping | None, table: Mapping) -> list[str]:
    """Where training moved probability on base-wrong test items, and exact pass@k."""
    if not moves and not exact:
        return []
    out = ["## Mass moves, measured exactly", ""]
    if moves:
        out += ["On the test items the base model answers wrong (greedy), the mean change in "
                "p(gold) and in p(the base's own wrong answer) after training, seed means, with "
                "a 95% paired bootstrap over items:", "",
                "| method | items | p(gold) before | change | p(base's answer) before | change |",
                "|---|---:|---:|---|---:|---|"]
        out += [f"| {LABELS[m]} | {v['items']} | {v['gold_before']:.4f} | {ci_text(v['gold'], '{:+.4f}')} "
                f"| {v['wrong_before']:.4f} | {ci_text(v['wrong_answer'], '{:+.4f}')} |"
                for m, v in moves.items()]
        out.append("")
    if exact:
        ks = list(exact["base"])
        sampled = {"base": table["base_pass_at_k"], "grpo": table["grpo"].get("pass_at_k") or {}}
        out += ["Exact pass@k on the test items, 1 − (1 − p(gold))^k averaged over items (no "
                "sampling noise; in expectation a lower bound on the judged pass@k), beside the sampled "
                "one:", "",
                "| model | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
        for name, curve in exact.items():
            cells = [f"{curve[k]:.3f} ({sampled[name][k]:.3f})" if k in sampled[name]
                     else f"{curve[k]:.3f}" for k in ks]
            out.append(f"| {'base' if name == 'base' else 'GRPO'} | " + " | ".join(cells) + " |")
        out += ["", "Each cell: exact (sampled, judged)."]
    return out + [""]


def _pass_at_k_section(table: Mapping) -> list[str]:
    sampled = [m for m in LABELS if isinstance(table.get(m), dict) and table[m].get("pass_at_k")]
    ks = sorted(table["base_pass_at_k"])
    return ["## pass@k on test (unbiased estimator, seed means of the sampled seeds)", "",
            "| k | base | " + " | ".join(LABELS[m] for m in sampled) + " |",
            "|---|---|" + "---|" * len(sampled),
            *[f"| {k} | {table['base_pass_at_k'][k]:.3f} | "
              + " | ".join(f"{table[m]['pass_at_k'][k]:.3f}" for m in sampled) + " |" for k in ks],
            ""]


def _repair_section(table: Mapping) -> list[str]:
    methods = [m for m in LABELS if isinstance(table.get(m), dict) and "repair" in table[m]]
    rate = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    return ["## Repair rate by pre-RL accessibility (test, base-wrong items, seed means)", "",
            "| correct of samples | base-wrong items | " + " | ".join(LABELS[m] for m in methods)
            + " |", "|---|---|" + "---|" * len(methods),
            *[f"| {b} | {n} | " + " | ".join(rate(table[m]["repair"][b]) for m in methods) + " |"
              for b, n in table["wrong_per_bin"].items()], ""]


def _attribution_section(attribution: Mapping, shares: Mapping) -> list[str]:
    sizes = f"Matched size {attribution['size']} items per accessibility partition"
    if attribution.get("truth_size"):
        sizes += (f", {attribution['truth_size']} per ground-truth partition "
                  "(stored_inaccessible, not_stored)")
    out = ["## Data attribution", "", sizes + " (available: "
           + ", ".join(f"{k} {v}" for k, v in attribution["available"].items()) + ").", ""]
    if shares:
        out += ["| partition | test gain over base | share of full-data gain [95% CI] |",
                "|---|---|---|"]
        for name, s in shares.items():
            ci = f"[{s['ci'][0]:.2f}, {s['ci'][1]:.2f}]" if s["ci"] else "no interval"
            share = "n/a" if s["share"] is None else f"{s['share']:.2f}"
            out.append(f"| {name} | {s['gain']:+.3f} | {share} {ci} |")
        out.append("")
    return out


def _stage_section(stages: Mapping[str, float] | None) -> list[str]:
    if not stages:
        return []
    total = sum(stages.values())
    return ["## Stage times", "",
            "Seconds per DVC stage of this variant, from its MLflow stage runs (the latest of "
            "each): " + ", ".join(f"{name} {sec:.0f}" for name, sec in stages.items())
            + f"; {total:.0f} s in all ({total / 60:.1f} min).", ""]


def _judge_lines(judge: Mapping) -> list[str]:
    """The judge's measured error rates (stage `judge_reliability`), which every accessibility
    count, repair rate and reward inherits."""
    groups = [(name, g) for name, g in judge.items() if isinstance(g, Mapping)]
    rate = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    return ["## The judge's errors", "",
            f"Judge `{judge['judge']}` on distinct sampled test answers, against their labels "
            "(stage `judge_reliability`). A bare group is the model's own verdicts (no exact-"
            "match fast path, no core-word gate, a seeded sample of at most 4,000 pairs); an "
            "`_as_used` group is the judge as the study runs it, on every pair:", "",
            *[f"- {name}: agreement {rate(g['agreement'])}, false positives "
              f"{rate(g['false_positive_rate'])}, false negatives "
              f"{rate(g['false_negative_rate'])} (n={g['n']})" for name, g in groups], "",
            "Accessibility is a count of judged-correct samples, so a false positive on any of "
            "an item's wrong answers moves a fact the model cannot know out of the "
            "inaccessible bin; read the low bins and the attribution partitions with this "
            "rate in mind.", ""]

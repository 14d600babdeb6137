"""Stage `analyze`: the study's one report: Table 1, the five findings, and the figures.

    dvc repro analyze   # dvc.yaml's cmd passes every input and output path
Reads <runs>/base, <runs>/<method>/seed<s> for every method and seed, <runs>/attribution and
<runs>/transfer (the layout the sample, train, attribution and transfer stages write), their
metrics files and the judge's measured reliability; writes the report, its metrics file and
the plots directory (CSV for `dvc plots`, PNG for the report and MLflow).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from recall.analysis import compare, correct_counts, write_plots
from recall.claims import (
    accuracy_rows,
    across_bases,
    correct_by_item,
    item_tests,
    majority_by_item,
    mass_moves,
    normalised_gain,
    pass_at_k_change,
    repair_trend,
    share_of_gain,
)
from recall.config import load_params
from recall.contract import read_items, read_records, write_json
from recall.environment import environment
from recall.errors import run_stage
from recall.figures import write_latent_plot, write_study_plots
from recall.findings import (
    against_baselines,
    against_majority,
    attribution_line,
    controls,
    repair_trend_line,
    sharpening,
)
from recall.ground_truth import chance_floor, fact_exposures, read_people, stored_split
from recall.latent import (
    exact_pass_curve,
    latent_evidence,
    mean_expected,
    read_gold_probabilities,
)
from recall.report import attribution_shares, inference_baselines, method_table, transfer_gains
from recall.significance import paired_bootstrap, seed_means
from recall.study_config import METHODS, RL_METHODS
from recall.tracking import log_to_parent, stage_run, stage_seconds
from recall.writeup import study_markdown


def _runs(root: Path, seeds, sampled=()) -> dict:
    """seed -> (greedy records, sample records, or [] for a seed that was not sampled)."""
    return {s: (read_records(root / f"seed{s}" / "greedy.jsonl"),
                read_records(root / f"seed{s}" / "samples.jsonl") if s in sampled else [])
            for s in seeds}


def _transfer(base_greedy, runs: Path, seeds, metrics: Path) -> dict:
    moved = json.loads(metrics.read_text())
    transfer = transfer_gains(base_greedy, {s: g for s, (g, _) in
                                            _runs(runs / "transfer", seeds).items()},
                              moved["source_test"], moved["target_test"])
    transfer.update(by=moved["by"], source_names=moved["source"], target_names=moved["target"],
                    source_train=moved["source_train"])
    return transfer


def _dynamics(runs: Path) -> list[dict]:
    rows = []
    for m in METHODS:
        with (runs / m / "dynamics.csv").open() as fh:
            rows += [{**r, "progress": float(r["progress"]), "accuracy": float(r["accuracy"])}
                     for r in csv.DictReader(fh)]
    return rows


def _arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, required=True)
    ap.add_argument("--runs", type=Path, required=True, help="root of every model's records")
    ap.add_argument("--world", type=Path, required=True,
                    help="the toy world's people: ground truth (real data has none)")
    ap.add_argument("--attribution", type=Path, required=True, help="the attribution metrics")
    ap.add_argument("--transfer", type=Path, required=True, help="the transfer metrics")
    ap.add_argument("--judge-reliability", type=Path, required=True)
    ap.add_argument("--plots", type=Path, required=True)
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    ap.add_argument("--headline", type=Path, required=True,
                    help="folder of the headline metrics, one file per `dvc metrics show` row")
    return ap.parse_args()


def _chance(params, items, base_samples, people) -> dict | None:
    """The chance floor: simulated blind guessers, and the base model on the RL-train facts
    of people it never saw; None for real data (no item has a world label)."""
    exposures = fact_exposures(people, items)
    train = [it for it in items if it.split == "train" and it.id in exposures]
    if not train:
        return None
    n = params.sampling.n_samples
    access = correct_counts(base_samples, "train", n)
    unseen = [it.id for it in train if exposures[it.id] == 0]
    hit = sum(1 for i in unseen if access[i])
    return {"n": n,
            "simulated": [chance_floor(people, train, n, params.experiment.seed, g)
                          for g in ("values", "words")] if unseen else [],
            "measured": {"items": len(unseen), "hit": hit,
                         "share": hit / len(unseen) if unseen else 0.0},
            "split": stored_split({it.id: exposures[it.id] for it in train}, access)}


def _bases(params, runs: Path, base, methods) -> dict | None:
    """Table 1's headline rows over pretrained bases: the study's base (experiment.seed, all
    post-training seeds) and every bases.seeds base (one post-training seed)."""
    if not params.bases.seeds:
        return None
    first, seed = params.experiment.seed, params.study.seeds[0]
    bases = {first: base[0], **{s: read_records(runs / f"bases/base{s}/base/greedy.jsonl")
                                for s in params.bases.seeds}}
    out = {"first": first, "seeds_first": len(params.study.seeds), "methods": {},
           "base_accuracy": {b: sum(r.scores[0] for r in g if r.split == "test")
                             / sum(r.split == "test" for r in g) for b, g in bases.items()}}
    for m in params.bases.methods:
        trained = {first: [g for g, _ in methods[m].values()],
                   **{s: [read_records(runs / f"bases/base{s}/{m}/seed{seed}/greedy.jsonl")]
                      for s in params.bases.seeds}}
        out["methods"][m] = across_bases(bases, trained)
    return out


def _latent(params, runs: Path, items, plots: Path, exposures, figures: list) -> dict | None:
    """p(gold) of the RL-train items before and after GRPO (its first sampled seed), by
    exposure band, with its figure; None without p(gold) or ground truth."""
    train = [it.id for it in items if it.split == "train"]
    before = read_gold_probabilities(runs / "base/p_gold.jsonl")
    after_file = runs / f"grpo/seed{min(params.study.sample_seeds)}/p_gold.jsonl"
    after = read_gold_probabilities(after_file) if after_file.exists() else None
    figures += write_latent_plot(before, after, exposures, train, plots)
    return latent_evidence(before, after, exposures, train, params.latent.absent_quantile)


def _world_evidence(params, runs: Path, items, base, people, plots: Path, figures: list) -> dict:
    """The chance floor, p(gold) by exposure band, mass moves and exact pass@k."""
    mass, exact = _mass(params, runs, items)
    return {"chance": _chance(params, items, base[1], people), "mass_moves": mass,
            "exact_pass_at_k": exact,
            "latent": _latent(params, runs, items, plots, fact_exposures(people, items), figures)}


def _mass(params, runs: Path, items) -> tuple[dict | None, dict | None]:
    """Issue 31's exact measures on the test items: p(gold) and p(the base's wrong greedy
    answer) before and after GRPO, SFT and DPO (base-wrong items), and exact pass@k before
    and after GRPO. (None, None) without p(gold)."""
    before = read_gold_probabilities(runs / "base/p_gold.jsonl")
    wrong = read_gold_probabilities(runs / "base/p_gold.jsonl", "p_base_answer")
    if before is None:
        return None, None
    moves = {}
    for m in ("grpo", "sft", "dpo"):
        files = [runs / m / f"seed{s}/p_gold.jsonl" for s in params.study.seeds]
        if wrong and all(f.exists() for f in files):
            moves[m] = mass_moves(before, wrong, [read_gold_probabilities(f) for f in files],
                                  [read_gold_probabilities(f, "p_base_answer") for f in files])
    test = [it.id for it in items if it.split == "test"]
    ks = params.analyze.pass_k
    exact = {"base": exact_pass_curve(before, test, ks)}
    after = runs / f"grpo/seed{min(params.study.sample_seeds)}/p_gold.jsonl"
    if after.exists():
        exact["grpo"] = exact_pass_curve(read_gold_probabilities(after), test, ks)
    return moves or None, exact


def _evidence(params, base, methods, table, parts, expected=None) -> tuple[dict, list[str]]:
    """Item-level tests, gains and attribution shares, and the findings judged from them
    (recall.claims, recall.findings)."""
    n, k_last = params.sampling.n_samples, max(params.analyze.pass_k)
    greedy = {m: {s: g for s, (g, _) in runs.items()} for m, runs in methods.items()}
    tests = {split: item_tests(base[0], greedy, split) for split in ("test", "val")
             if any(r.split == split for r in base[0])}  # val: only where it was decoded
    base_ok = correct_by_item(base[0], "test")
    grpo = [correct_by_item(g, "test") for g in greedy["grpo"].values()]
    grpo_means = seed_means(grpo)
    majority = majority_by_item(base[1], params.study.majority_k)
    vs_majority = paired_bootstrap({i: float(v) for i, v in majority.items()}, grpo_means)
    trend = repair_trend(base_ok, grpo, correct_counts(base[1], "test", n))
    sampled = methods["grpo"][min(params.study.sample_seeds)][1]
    first, last = (pass_at_k_change(base[1], sampled, k) for k in (1, k_last))
    shares = {name: share_of_gain(base_ok, grpo, [correct_by_item(g, "test")
                                                  for g in runs.values()])
              for name, runs in parts.items()}
    base_acc = sum(base_ok.values()) / len(base_ok)
    after = sum(grpo_means.values()) / len(grpo_means)
    pk_n = table["base_pass_at_k"].get(n)
    gains = {"base": base_acc, "after": after, "relative": (after - base_acc) / base_acc,
             "normalised": normalised_gain(base_acc, after, pk_n) if pk_n else None,
             "pass_at_k": pk_n, "k": n}
    known = None
    if "sft" in greedy and "sft_known" in greedy:
        known = paired_bootstrap(*(seed_means([correct_by_item(g, "test")
                                               for g in greedy[m].values()])
                                   for m in ("sft", "sft_known")))
    judged_on = next((p for p in ("tail", "stored_inaccessible", "inaccessible")
                      if p in shares), None)
    found = [against_baselines(tests["test"]),
             against_majority(vs_majority, params.study.majority_k),
             repair_trend_line(trend, table["grpo"]["repair"], table["wrong_per_bin"]),
             sharpening(table["base_pass_at_k"], table["grpo"]["pass_at_k"], first, last,
                        k_last, after),
             attribution_line(shares, judged_on, expected, params.latent.min_expected_events),
             *controls(table, tests["test"], known)]
    evidence = {"tests": tests, "gains": gains, "shares": shares, "vs_majority": vs_majority,
                "trend": trend, "pass_at_k_change": {"1": first, str(k_last): last},
                "known_vs_all": known}
    return evidence, found


def _headline(base, methods, evidence, judge: dict) -> dict[str, dict[str, float]]:
    """metrics/headline/<row>.json, one row of `dvc metrics show` each: greedy accuracy per
    split with its interval (recall.claims.accuracy_rows), and the study's scalars."""
    greedy = {m: {s: g for s, (g, _) in runs.items()} for m, runs in methods.items()}
    rows = {}
    for split in ("test", "val"):  # every row is a declared output, so an undecoded one is {}
        rows.update({f"{split}{end}": {} for end in ("", "_low", "_high")},
                    **accuracy_rows(base[0], greedy, split))
    study = {"minutes": sum(evidence["stages"].values()) / 60}
    if evidence["chance"]:
        study["chance_floor"] = evidence["chance"]["measured"]["share"]
    if (agreement := judge.get("pre_rl_as_used", {}).get("agreement")) is not None:
        study["judge_agreement"] = agreement
    # nested: `dvc metrics show` names these study.minutes, ..., after the method columns
    return {**rows, "study": {"study": study}}


def _mlflow_metrics(headline: dict, baselines, shares, transfer, evidence, d: str) -> dict:
    """The headline under the names `dvc exp show` gives them (test.grpo, study.minutes),
    and the compare view's other numbers: inference baselines, gains, shares, transfer."""
    named = {f"{row}.{col}": v for row, cols in headline.items() if row != "study"
             for col, v in cols.items()}
    named.update({f"study.{k}": v for k, v in headline["study"]["study"].items()})
    return {**named, "majority.test": baselines["majority"][d],
            **({"cot.test": baselines["cot"][d]} if baselines["cot"] is not None else {}),
            **{f"attribution_share.{n}": p["share"]["mean"]
               for n, p in shares["partitions"].items()},
            "transfer_target_gain": transfer["target"]["gain"]["mean"],
            "grpo_gain_relative": evidence["gains"]["relative"],
            **_latent_metrics(evidence)}


def _latent_metrics(evidence: dict) -> dict:
    """p(gold) in the compare view: RL-train means before and after GRPO, and the mass
    moved on base-wrong test items per method."""
    out = {}
    if evidence.get("latent"):
        out["p_gold.train_base"] = evidence["latent"]["mean_before"]
        if evidence["latent"]["mean_after"] is not None:
            out["p_gold.train_grpo"] = evidence["latent"]["mean_after"]
    for m, moves in (evidence.get("mass_moves") or {}).items():
        out[f"mass.{m}.gold_change"] = moves["gold"]["diff"]
        out[f"mass.{m}.wrong_answer_change"] = moves["wrong_answer"]["diff"]
    return out


def main() -> None:
    args = _arguments()
    params = load_params(args.params)
    study = params.study
    runs = args.runs

    with stage_run(params, "analyze") as run:
        import mlflow

        items = read_items(args.items)
        base = (read_records(runs / "base/greedy.jsonl"), read_records(runs / "base/samples.jsonl"))
        methods = {m: _runs(runs / m, study.seeds,
                            study.sample_seeds if m in study.sample_methods else ())
                   for m in METHODS}
        table = method_table(base, methods, items, params.analyze, params.sampling.n_samples)
        table["majority_k"] = study.majority_k
        d = table["datasets"][0]  # the findings and MLflow headline are about the first dataset
        for m in RL_METHODS:  # the reward ablation (-S grpo.reward=exact_match) shows in Table 1
            table[m]["reward"] = getattr(params, m).reward
        cot = read_records(runs / "base/cot.jsonl") if params.cot.run else None
        baselines = inference_baselines(base[1], cot, items, study.majority_k)
        attribution = json.loads(args.attribution.read_text())
        # every partition that ran: the accessibility ones and, toy, the ground-truth ones
        parts = {name: {s: g for s, (g, _) in _runs(runs / "attribution" / name,
                                                    params.attribution.seeds).items()}
                 for name in attribution["partitions"]}
        shares = attribution_shares(base[0], methods["grpo"], parts)
        transfer = _transfer(base[0], runs, params.transfer.seeds, args.transfer)
        dynamics = _dynamics(runs)
        judge = json.loads(args.judge_reliability.read_text())
        plots = args.plots
        figures = write_study_plots(table, dynamics, shares, plots)
        # The base model's accessibility, and GRPO's first sampled seed against it.
        first = min(study.sample_seeds)
        figures += write_plots(compare(*base, *methods["grpo"][first], params.analyze,
                                       params.sampling.n_samples), "grpo", plots)
        expected = mean_expected(attribution.get("expected_correct_rollouts"))
        evidence, found = _evidence(params, base, methods, table, parts, expected)
        evidence.update(_world_evidence(params, runs, items, base, read_people(args.world),
                                        plots, figures), expected_correct_rollouts=expected)
        evidence["stages"] = stage_seconds(run)
        evidence["bases"] = _bases(params, runs, base, methods)
        report = study_markdown(table, baselines, transfer, found, attribution, figures,
                                judge, environment(), evidence)
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report)
        write_json(args.metrics, {"table": table, **baselines, "attribution": shares,
                                  "transfer": transfer,
                                  **{k: v for k, v in evidence.items() if k != "stages"}})

        headline = _headline(base, methods, evidence, judge)
        for row, values in headline.items():
            write_json(args.headline / f"{row}.json", values)
        named = _mlflow_metrics(headline, baselines, shares, transfer, evidence, d)
        mlflow.log_metrics(named)
        log_to_parent(run, named)
        for fig in figures:
            mlflow.log_artifact(str(fig), artifact_path="plots")
        mlflow.log_artifact(str(args.report))


if __name__ == "__main__":
    run_stage(main)

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

from recall.analysis import compare, write_plots
from recall.config import load_params
from recall.contract import read_items, read_records, write_json
from recall.environment import environment
from recall.errors import run_stage
from recall.figures import study_markdown, write_study_plots
from recall.report import attribution_shares, findings, inference_baselines, method_table, transfer_gains
from recall.study_config import METHODS, RL_METHODS
from recall.tracking import log_to_parent, stage_run


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
    ap.add_argument("--attribution", type=Path, required=True, help="the attribution metrics")
    ap.add_argument("--transfer", type=Path, required=True, help="the transfer metrics")
    ap.add_argument("--judge-reliability", type=Path, required=True)
    ap.add_argument("--plots", type=Path, required=True)
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    return ap.parse_args()


def main() -> None:
    args = _arguments()
    params = load_params(args.params)
    study = params.study
    runs = args.runs

    with stage_run(params, "analyze") as run:
        import mlflow

        items = read_items(args.items)
        base = (read_records(runs / "base/greedy.jsonl"), read_records(runs / "base/samples.jsonl"))
        methods = {m: _runs(runs / m, study.seeds, study.sample_seeds) for m in METHODS}
        table = method_table(base, methods, items, params.analyze)
        table["majority_k"] = study.majority_k
        d = table["datasets"][0]  # the findings and MLflow headline are about the first dataset
        for m in RL_METHODS:  # the reward ablation (-S grpo.reward=exact_match) shows in Table 1
            table[m]["reward"] = getattr(params, m).reward
        cot = read_records(runs / "base/cot.jsonl") if params.cot.run else None
        baselines = inference_baselines(base[1], cot, items, study.majority_k)
        majority = baselines["majority"][d]
        attribution = json.loads(args.attribution.read_text())
        parts = {name: {s: _runs(runs / "attribution" / name, [s])[s][0]
                        for s in params.attribution.seeds} for name in params.attribution.partitions}
        shares = attribution_shares(base[0], methods["grpo"], parts)
        transfer = _transfer(base[0], runs, params.transfer.seeds, args.transfer)
        dynamics = _dynamics(runs)
        judge = json.loads(args.judge_reliability.read_text())
        plots = args.plots
        figures = write_study_plots(table, dynamics, shares, plots)
        # The base model's accessibility, and GRPO's first sampled seed against it.
        first = min(study.sample_seeds)
        figures += write_plots(compare(*base, *methods["grpo"][first], params.analyze), "grpo", plots)
        found = findings(table, majority, shares, d)
        report = study_markdown(table, baselines, shares, transfer, found, attribution, figures,
                                judge, environment())
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report)
        write_json(args.metrics, {"table": table, **baselines, "attribution": shares,
                                  "transfer": transfer})

        headline = {"test_acc_base": table["base"][d], "test_acc_majority": majority,
                    **({"test_acc_cot": baselines["cot"][d]} if cot is not None else {}),
                    **{f"test_acc_{m}": table[m]["accuracy"][d]["mean"] for m in METHODS},
                    **{f"test_gain_{m}": table[m]["gain_abs"][d]["mean"] for m in METHODS},
                    **{f"attribution_share_{n}": p["share"]["mean"]
                       for n, p in shares["partitions"].items()},
                    "transfer_target_gain": transfer["target"]["gain"]["mean"]}
        mlflow.log_metrics(headline)
        log_to_parent(run, headline)
        for fig in figures:
            mlflow.log_artifact(str(fig), artifact_path="plots")
        mlflow.log_artifact(str(args.report))


if __name__ == "__main__":
    run_stage(main)

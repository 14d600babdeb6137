"""Stage `analyze`: base vs trained model: accuracy, pass@k, accessibility, repair rate.

    python pipelines/analyze.py [--method grpo]
Writes metrics/analysis.json, plots/*.csv|png and reports/analysis.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recall.analysis import compare, report_markdown, write_plots
from recall.config import load_params
from recall.contract import read_records
from recall.tracking import log_to_parent, stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--method", default="grpo")
    args = ap.parse_args()
    params = load_params(args.params)
    base, after = Path("runs/base"), Path("runs") / args.method

    with stage_run(params, "analyze") as run:
        import mlflow

        result = compare(read_records(base / "greedy.jsonl"), read_records(base / "samples.jsonl"),
                         read_records(after / "greedy.jsonl"), read_records(after / "samples.jsonl"),
                         params.analyze)
        acc = result["accuracy"]
        metrics = {
            "accuracy": {"base": acc["base"], args.method: acc["after"],
                         "gain_abs": acc["gain_abs"], "gain_rel": acc["gain_rel"]},
            "pass_at_k": {"base": result["pass_at_k"]["base"],
                          args.method: result["pass_at_k"]["after"]},
            "repair_rate": {b: v["rate"] for b, v in result["repair"].items()},
            "transitions": result["transitions"],
        }
        Path("metrics").mkdir(exist_ok=True)
        Path("metrics/analysis.json").write_text(json.dumps(metrics, indent=2) + "\n")
        figures = write_plots(result, args.method, Path("plots"))
        Path("reports").mkdir(exist_ok=True)
        Path("reports/analysis.md").write_text(report_markdown(result, args.method))

        headline = {"test_acc_base": acc["base"]["test"],
                    f"test_acc_{args.method}": acc["after"]["test"], "test_gain_abs": acc["gain_abs"],
                    **{f"pass_at_{k}_{args.method}": v for k, v in result["pass_at_k"]["after"].items()},
                    **{f"pass_at_{k}_base": v for k, v in result["pass_at_k"]["base"].items()}}
        mlflow.log_metrics(headline)
        log_to_parent(run, headline)
        for fig in figures:
            mlflow.log_artifact(str(fig), artifact_path="plots")
        mlflow.log_artifact("reports/analysis.md")


if __name__ == "__main__":
    main()

"""Stage `train@grpo`: GRPO (TRL) on RL-train items with the judge's binary reward.

    python pipelines/train_grpo.py [--params params.yaml]
Resumes from checkpoints/grpo when a checkpoint of the same settings exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from recall.config import load_params
from recall.contract import read_items
from recall.judge import RuleJudge
from recall.judge_server import open_judge
from recall.training import train_grpo
from recall.tracking import stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, default=Path("data/validated/items.jsonl"))
    ap.add_argument("--base", type=Path, default=Path("models/base"))
    ap.add_argument("--out", type=Path, default=Path("models/grpo"))
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints/grpo"))
    args = ap.parse_args()
    params = load_params(args.params)

    with stage_run(params, "train@grpo"):
        import mlflow

        train = [it for it in read_items(args.items) if it.split == "train"]
        # exact_match is the paper's reward ablation; judge uses the `judge` section's backend.
        judge_ctx = (open_judge(params.judge, on_unreachable="none")
                     if params.grpo.reward == "judge" else contextlib.nullcontext(RuleJudge()))
        with judge_ctx as judge:
            result = train_grpo(args.base, train, judge, params.grpo, params.rollout,
                                args.checkpoints, args.out, seed=params.experiment.seed,
                                max_failure_rate=params.judge.max_failure_rate)
        mlflow.set_tag("reward", f"{params.grpo.reward}:{judge.name}")
        steps = [h for h in result["log_history"] if "reward" in h]
        rows = ["step,reward,kl"] + [f"{h['step']},{h['reward']},{h.get('kl', '')}" for h in steps]
        Path("plots").mkdir(exist_ok=True)
        Path("plots/train_grpo.csv").write_text("\n".join(rows) + "\n")
        summary = {
            "steps": result["global_step"],
            "first_reward": steps[0]["reward"] if steps else None,
            "last_reward": steps[-1]["reward"] if steps else None,
            "resumed": result["resumed_from"] is not None,
            "unjudged_completions": result["unjudged"],
            "judged_completions": result["judged"],
        }
        Path("metrics").mkdir(exist_ok=True)
        Path("metrics/train_grpo.json").write_text(json.dumps(summary, indent=2) + "\n")
        mlflow.log_artifact("plots/train_grpo.csv", artifact_path="plots")
        if params.tracking.log_models:
            mlflow.log_artifacts(str(args.out), artifact_path="model")


if __name__ == "__main__":
    main()

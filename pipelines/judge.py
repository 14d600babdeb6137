"""Stage `judge`: the judge model in models/judge. `models.judge.source: train` (toy): train
the toy judge on labelled pairs from the world and score it served; `hub` / `local`: stage
the pinned judge (paper: Qwen2.5-72B-Instruct, which the judge server loads and whose
tokenizer frames the grading prompts); `none`: a judge served elsewhere (judge.base_url).

    dvc repro judge   # dvc.yaml's cmd passes every input and output path
Held-out agreement is measured through the judge as served (vLLM, the toy prompt, no fast
path and no cache), so it is the model's own score; it goes to metrics/judge.json and MLflow.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path

from recall.compute import resolve
from recall.config import load_params
from recall.contract import read_items, write_json
from recall.errors import run_stage
from recall.judge.client import LLMJudge
from recall.judge.reliability import reliability_by_kind
from recall.judge.server import serve_judge
from recall.judge.training import (
    HELD_OUT_GROUPS,
    TRAIN_GROUPS,
    judge_pairs,
    judge_tokenizer,
    judge_training_pairs,
    train_judge,
)
from recall.staging import stage_logged
from recall.tracking import stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--world", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)
    cfg = params.judge_model

    with stage_run(params, "judge"):
        import mlflow

        if params.models.judge.source != "train":
            stage_logged("judge", params.models.judge, args.out, args.metrics)
            return

        items = read_items(args.world / "items.jsonl")
        rng = random.Random(params.experiment.seed)
        train = judge_training_pairs([i for i in items if i.split in TRAIN_GROUPS], rng,
                                     cfg.negatives, cfg.draws, params.experiment.seed)
        # Held-out means held-out people: the world's planted leaks ask RL-train facts.
        seen = {i.fact for i in items if i.split in TRAIN_GROUPS}
        held_out = judge_pairs([i for i in items if i.split in HELD_OUT_GROUPS
                                and i.fact not in seen], rng, cfg.negatives)
        stats = train_judge(cfg, judge_tokenizer(items), train, args.out, params.experiment.seed,
                            resolve(params.compute))
        bare = dataclasses.replace(params.judge, backend="llm", prompt="toy", fast_path=False,
                                   cache="")
        with serve_judge(str(args.out), compute=params.compute) as base_url:
            judge = LLMJudge(bare, base_url, str(args.out))
            report = reliability_by_kind(judge, held_out)
        summary = {**stats, "held_out": report}
        write_json(args.metrics, summary)
        mlflow.log_metric("judge_train_loss", stats["train_loss"])
        mlflow.log_metrics({f"judge_{k}": v for k, v in report["all"].items() if v is not None})
        if params.tracking.log_models:
            mlflow.log_artifacts(str(args.out), artifact_path="model")


if __name__ == "__main__":
    run_stage(main)

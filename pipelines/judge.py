"""Stage `judge`: train the toy judge on labelled pairs from the world; score it on held-out pairs.

    python pipelines/judge.py [--params params.yaml] [--world data/world] [--out models/judge]
The held-out agreement and false positive rate go to metrics/judge.json and MLflow.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from recall.config import load_params
from recall.contract import SamplingSettings, read_items
from recall.engines import TransformersEngine
from recall.judge_training import (HELD_OUT_GROUPS, TRAIN_GROUPS, agreement, judge_pairs,
                                   judge_tokenizer, pair_line, train_judge)
from recall.prompts import JUDGE_TOY
from recall.tracking import stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--world", type=Path, default=Path("data/world"))
    ap.add_argument("--out", type=Path, default=Path("models/judge"))
    ap.add_argument("--metrics", type=Path, default=Path("metrics/judge.json"))
    args = ap.parse_args()
    params = load_params(args.params)
    cfg = params.judge_model

    with stage_run(params, "judge"):
        import mlflow

        items = read_items(args.world / "items.jsonl")
        rng = random.Random(params.experiment.seed)
        train = judge_pairs([i for i in items if i.split in TRAIN_GROUPS], rng, cfg.negatives)
        held_out = judge_pairs([i for i in items if i.split in HELD_OUT_GROUPS], rng, cfg.negatives)
        stats = train_judge(cfg, judge_tokenizer(items), train, args.out, params.experiment.seed)
        # Greedy, one token: what the served judge answers under its choice constraint.
        replies = TransformersEngine(str(args.out)).generate(
            [pair_line(p)[0] for p in held_out], SamplingSettings(n=1, max_tokens=1))
        verdicts = [JUDGE_TOY.parse(r[0]) for r in replies]
        scores = agreement([p.label for p in held_out], verdicts)
        by_kind = {}
        for kind in sorted({p.kind for p in held_out}):
            idx = [i for i, p in enumerate(held_out) if p.kind == kind]
            by_kind[kind] = sum(verdicts[i] == held_out[i].label for i in idx) / len(idx)
        summary = {**stats, "held_out": scores, "held_out_agreement_by_kind": by_kind}
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        args.metrics.write_text(json.dumps(summary, indent=2) + "\n")
        mlflow.log_metrics({f"judge_{k}": v for k, v in scores.items() if v is not None})
        if params.tracking.log_models:
            mlflow.log_artifacts(str(args.out), artifact_path="model")


if __name__ == "__main__":
    main()

"""Stage `judge_reliability`: the judge's agreement with ground truth on real policy samples.

    python pipelines/judge_reliability.py [--params params.yaml] [--labels FILE]
The paper's Appendix D: distinct test answers sampled before RL (runs/base) and after RL
(runs/grpo/seed0), labelled by the toy world's ground truth, or by a labelled sample file
(--labels, JSON lines of question/answers/candidate/label) for real data. The judge is the
configured model served bare (no fast path, no cache), so the rates are the model's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from recall.config import load_params
from recall.contract import read_items, read_records
from recall.errors import run_stage
from recall.judge.factory import open_judge
from recall.judge.reliability import labelled_from_samples, read_labelled, reliability
from recall.tracking import log_to_parent, stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, default=Path("data/validated/items.jsonl"))
    ap.add_argument("--runs", nargs="+", default=["base:pre_rl", "grpo/seed0:post_rl"],
                    help="run:group pairs; samples come from runs/<run>/samples.jsonl")
    ap.add_argument("--labels", type=Path, help="labelled sample file (real data)")
    ap.add_argument("--metrics", type=Path, default=Path("metrics/judge_reliability.json"))
    args = ap.parse_args()
    params = load_params(args.params)

    with stage_run(params, "judge_reliability") as run:
        import mlflow

        items = {it.id: it for it in read_items(args.items)}
        groups = {}
        for spec in args.runs:
            model, group = spec.split(":")
            records = read_records(Path("runs") / model / "samples.jsonl")
            groups[group] = labelled_from_samples(records, items, split="test")
        if args.labels:
            groups["labelled"] = read_labelled(args.labels)
        bare = dataclasses.replace(params.judge, fast_path=False, cache="")
        with open_judge(bare) as judge:
            report = reliability(judge, groups)
        report = {"judge": judge.name, **report}
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        args.metrics.write_text(json.dumps(report, indent=2) + "\n")
        mlflow.set_tag("judge", judge.name)
        headline = {f"judge_{name}_{group}": scores[name] for group, scores in report.items()
                    if isinstance(scores, dict)
                    for name in ("agreement", "false_positive_rate", "false_negative_rate")
                    if scores[name] is not None}
        mlflow.log_metrics(headline)
        log_to_parent(run, headline)


if __name__ == "__main__":
    run_stage(main)

"""Stage `train@<method>`: one training method over `study.seeds`, all on the one base model.

    dvc repro train@grpo   # dvc.yaml's cmd passes every input and output path
Each seed trains from models/base on the RL-train items (greedy train/test accuracy is
recorded over normalised training progress), then gets the base model's analyses: greedy
answers and `sampling.n_samples` test samples. Writes models/<method>/seed<s>,
runs/<method>/seed<s>/{greedy,samples}.jsonl, runs/<method>/dynamics.csv and
metrics/train_<method>.json. RL runs resume from checkpoints/<method>/seed<s>. A rerun
keeps every seed that finished under the same inputs (runs/<method>/seed<s>/finished.json).

With `compute.num_processes` (times `compute.num_machines`) above 1 the script relaunches
itself on every rank (recall/launcher.py): all ranks train; the main process alone opens
the MLflow run, evaluates and writes files.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from recall.compute import is_main_process, world_size
from recall.config import load_params
from recall.contract import read_items, read_records, write_json
from recall.errors import run_stage
from recall.ground_truth import fact_exposures, read_people, stored_items
from recall.judge.factory import open_judge
from recall.latent import wrong_answer_items
from recall.launcher import relaunch_if_needed
from recall.study import OutputDirs, prune_seeds, reward_judge, run_seed
from recall.study_config import METHODS, RL_METHODS
from recall.tracking import log_to_parent, rank_stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("method", choices=METHODS)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, required=True)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--base-samples", type=Path, required=True,
                    help="the base model's samples (accessibility, DPO pairs)")
    ap.add_argument("--world", type=Path, required=True,
                    help="the toy world's people (which facts were stored: known_by stored)")
    ap.add_argument("--models", type=Path, required=True, help="trained models: <models>/seed<s>")
    ap.add_argument("--runs", type=Path, required=True, help="records: <runs>/seed<s>")
    ap.add_argument("--checkpoints", type=Path, required=True, help="<checkpoints>/seed<s>")
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)
    relaunch_if_needed(params, __file__)
    method = args.method
    main_process = is_main_process()

    # The judge grades rewards and evaluations alike; a missing verdict stops evaluation
    # (recall.study) and, above judge.max_failure_rate, RL training: never a silent 0.
    with rank_stage_run(params, f"train@{method}") as run, \
            open_judge(params.judge, "none", params.compute) as judge:
        items = read_items(args.items)
        train = [it for it in items if it.split == "train"]
        cfg = getattr(params, method)
        if getattr(cfg, "known_by", "accessibility") == "stored":
            train = stored_items(train, fact_exposures(read_people(args.world), items))
        base_samples = {r.id: r for r in read_records(args.base_samples)}
        # A declared output of every train@ stage; only the RL methods write checkpoints.
        args.checkpoints.mkdir(parents=True, exist_ok=True)
        out = OutputDirs(args.models, args.runs, args.checkpoints)
        if main_process:  # the outputs persist across reruns (finished seeds are kept)
            prune_seeds(out, params.study.seeds)
        # The base's wrong greedy test answers: does training move probability off them?
        wrong = wrong_answer_items(items, read_records(args.base_samples.parent / "greedy.jsonl"))
        seeds = {}
        for seed in params.study.seeds:
            seeds[seed] = run_seed(method, params, args.base, train, items, base_samples,
                                   judge, method, seed, out,
                                   sample=seed in params.study.sample_seeds
                                   and method in params.study.sample_methods,
                                   latent=wrong if params.latent.run else None)
        if main_process:
            _record(params, method, seeds, judge, run, out, args.metrics)


def _record(params, method: str, seeds: dict, judge, run, out: OutputDirs, metrics: Path) -> None:
    """The main process's outputs: MLflow metrics and models, dynamics.csv, the metrics file."""
    import mlflow

    for seed, summary in seeds.items():
        mlflow.log_metrics({f"seed{seed}_greedy_acc_{s}": v
                            for s, v in summary["greedy_accuracy"].items()})
        if params.tracking.log_models:
            mlflow.log_artifacts(str(out.models / f"seed{seed}"),
                                 artifact_path=f"model/seed{seed}")
    rows = [{"method": method, "seed": seed, **row}
            for seed, summary in seeds.items() for row in summary.pop("dynamics")]
    with (out.runs / "dynamics.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["method", "seed", "progress", "step", "split", "accuracy"])
        writer.writeheader()
        writer.writerows(rows)
    write_json(metrics, {f"seed{s}": v for s, v in seeds.items()})
    mlflow.set_tags({"judge": judge.name, "world_size": str(world_size())})
    if method in RL_METHODS:  # the reward ablation: which grader the reward came from
        cfg = getattr(params, method)
        mlflow.set_tag("reward", f"{cfg.reward}:{reward_judge(cfg, judge).name}")
    mean_test = sum(s["greedy_accuracy"]["test"] for s in seeds.values()) / len(seeds)
    mlflow.log_metric("greedy_acc_test_mean", mean_test)
    log_to_parent(run, {f"test.{method}": mean_test})  # the name analyze's headline gives it
    mlflow.log_artifact(str(out.runs / "dynamics.csv"))

if __name__ == "__main__":
    run_stage(main)

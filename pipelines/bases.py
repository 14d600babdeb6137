"""Stage `bases`: more pretrained bases on the same world, each post-trained with the headline
methods, so Table 1's GRPO and SFT rows get an interval over bases.

    dvc repro bases   # dvc.yaml's cmd passes every input and output path
For each `bases.seeds` s: pretrain models/bases/base<s>/base from the world with seed s (as
stage base_model does with experiment.seed), answer greedily (runs/bases/base<s>/base), then
train each `bases.methods` with the first of `study.seeds` from it, checkpoint chosen as in
the study (runs/bases/base<s>/<method>/seed<k>). Writes metrics/bases.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recall.compute import is_main_process, resolve
from recall.config import load_params
from recall.contract import read_items, write_json, write_jsonl
from recall.errors import run_stage
from recall.judge.factory import open_judge
from recall.launcher import relaunch_if_needed
from recall.pretraining import pretrain_on_world
from recall.sampling import accuracy_by_split
from recall.study import OutputDirs, evaluate_policy, run_seed
from recall.tracking import rank_stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--world", type=Path, required=True, help="the world directory")
    ap.add_argument("--items", type=Path, required=True)
    ap.add_argument("--models", type=Path, required=True, help="<models>/base<s>/...")
    ap.add_argument("--runs", type=Path, required=True, help="<runs>/base<s>/...")
    ap.add_argument("--checkpoints", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)
    relaunch_if_needed(params, __file__)
    seed = params.study.seeds[0]
    main_process = is_main_process()

    # Every rank pretrains and trains; the main process alone evaluates, logs and writes.
    with rank_stage_run(params, "bases"), \
            open_judge(params.judge, "none", params.compute) as judge:
        items = read_items(args.items)
        train = [it for it in items if it.split == "train"]
        for d in (args.models, args.runs, args.checkpoints):
            d.mkdir(parents=True, exist_ok=True)  # declared outputs, even with no extra base
        out = {}
        for s in params.bases.seeds:
            base_dir = args.models / f"base{s}" / "base"
            stats = pretrain_on_world(args.world, params.pretrain, s, resolve(params.compute),
                                      base_dir)
            row = _base_row(base_dir, items, judge, params, s, stats, args.runs) \
                if main_process else {}
            for method in params.bases.methods:
                dirs = OutputDirs(args.models / f"base{s}" / method, args.runs / f"base{s}" / method,
                                  args.checkpoints / f"base{s}" / method)
                summary = run_seed(method, params, base_dir, train, items, {}, judge,
                                   f"bases/base{s}/{method}", seed, dirs, dynamics=False,
                                   sample=False)
                if main_process:
                    summary.pop("dynamics")
                    row[method] = summary
                    _log(f"base{s}_{method}_test_acc", summary["greedy_accuracy"]["test"])
            out[f"base{s}"] = row
        if main_process:
            write_json(args.metrics, out)


def _base_row(base_dir: Path, items, judge, params, s: int, stats: dict, runs: Path) -> dict:
    """The pretrained base's greedy answers (written) and its row of metrics/bases.json."""
    greedy, _, _ = evaluate_policy(base_dir, items, judge, params, s, f"bases/base{s}/base",
                                   sample=False)
    write_jsonl(runs / f"base{s}" / "base" / "greedy.jsonl", greedy)
    row = {"pretrain_final_loss": stats["final_loss"], "base": accuracy_by_split(greedy)}
    _log(f"base{s}_test_acc", row["base"]["test"])
    return row


def _log(key: str, value: float) -> None:
    import mlflow

    mlflow.log_metric(key, value)


if __name__ == "__main__":
    run_stage(main)

"""Stage `transfer`: GRPO trained on one "dataset", greedy accuracy on another.

    dvc repro transfer   # dvc.yaml's cmd passes every input and output path
Source and target are `transfer.source` / `transfer.target` families of `transfer.by`
(toy: relation families; real data: dataset names). GRPO (the grpo section) trains on the
source's RL-train items for every `transfer.seeds`; greedy answers on every evaluated split
go to runs/transfer/seed<s>/greedy.jsonl, and the item lists to metrics/transfer.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recall.compute import is_main_process
from recall.config import load_params
from recall.contract import read_items, write_json
from recall.errors import run_stage
from recall.judge.factory import open_judge
from recall.launcher import relaunch_if_needed
from recall.study import OutputDirs, run_seed, transfer_items
from recall.tracking import rank_stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, required=True)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--models", type=Path, required=True, help="<models>/seed<s>")
    ap.add_argument("--runs", type=Path, required=True, help="<runs>/seed<s>")
    ap.add_argument("--checkpoints", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)
    relaunch_if_needed(params, __file__)
    cfg = params.transfer

    # Every rank trains; the main process alone evaluates, logs and writes (run_seed).
    with rank_stage_run(params, "transfer"), \
            open_judge(params.judge, "none", params.compute) as judge:
        import mlflow

        items = read_items(args.items)
        train, source_test, target_test = transfer_items(items, cfg.by, cfg.source, cfg.target)
        out = {"by": cfg.by, "source": list(cfg.source), "target": list(cfg.target),
               "source_train": len(train), "source_test": [it.id for it in source_test],
               "target_test": [it.id for it in target_test], "seeds": {}}
        for seed in cfg.seeds:
            summary = run_seed("grpo", params, args.base, train, items, {}, judge, "transfer",
                               seed, OutputDirs(args.models, args.runs, args.checkpoints),
                               dynamics=False, sample=False)
            if is_main_process():
                summary.pop("dynamics")
                out["seeds"][f"seed{seed}"] = summary
                mlflow.log_metric(f"seed{seed}_test_acc", summary["greedy_accuracy"]["test"])
        if is_main_process():
            write_json(args.metrics, out)


if __name__ == "__main__":
    run_stage(main)

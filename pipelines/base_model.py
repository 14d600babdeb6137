"""Stage `base_model`: the policy every method starts from, in models/base.

    dvc repro base_model   # dvc.yaml's cmd passes every input and output path

`models.base.source: pretrain` (toy): a tokenizer and a tiny GPT-2 trained from scratch on
the world's biographies and instruction QA. `hub` (paper): the pinned revision of a Hugging
Face model, downloaded with $HF_TOKEN; `local`: a directory copied as it is. A real model is
only ever staged here, never overwritten by a toy one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recall.compute import resolve
from recall.config import load_params
from recall.contract import write_json
from recall.errors import run_stage
from recall.pretraining import pretrain_on_world
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

    with stage_run(params, "base_model"):
        import mlflow

        if params.models.base.source != "pretrain":
            stage_logged("base", params.models.base, args.out, args.metrics)
            return

        stats = pretrain_on_world(args.world, params.pretrain, params.experiment.seed,
                                  resolve(params.compute), args.out)
        for step, loss in enumerate(stats.pop("loss_curve")):
            mlflow.log_metric("pretrain_loss", loss, step=step)
        write_json(args.metrics, stats)
        mlflow.log_metrics(stats)
        if params.tracking.log_models:
            mlflow.log_artifacts(str(args.out), artifact_path="model")


if __name__ == "__main__":
    run_stage(main)

"""Stage `sample@<model>`: greedy answers and n rollout samples per item, every one judged.

    python pipelines/sample.py base   # or grpo; reads models/<model>, writes runs/<model>
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from recall.config import load_params
from recall.contract import read_items, write_jsonl
from recall.engines import make_engine
from recall.judge_server import open_judge
from recall.prompts import DIRECT
from recall.sampling import (accuracy_by_split, greedy_settings, rollout_settings,
                             sample_items)
from recall.tracking import stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", help="model name: reads models/<model>, writes runs/<model>")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, default=Path("data/validated/items.jsonl"))
    args = ap.parse_args()
    params = load_params(args.params)
    cfg = params.sampling
    model_dir, out = Path("models") / args.model, Path("runs") / args.model
    metrics_path = Path("metrics") / f"sample_{args.model}.json"

    # Evaluation: an unreachable LLM judge is an error here, never a score of 0.
    with stage_run(params, f"sample@{args.model}"), open_judge(params.judge) as judge:
        import mlflow

        items = read_items(args.items)
        engine = make_engine(cfg.engine, str(model_dir), seed=params.experiment.seed,
                             max_batch_sequences=cfg.max_batch_sequences)
        start = time.perf_counter()
        greedy_pool = [it for it in items if it.split in cfg.greedy_splits]
        greedy, unjudged_greedy = sample_items(engine, judge, greedy_pool,
                                               greedy_settings(params.rollout), args.model)
        pool = [it for it in items if it.split in cfg.sample_splits]
        settings = rollout_settings(params.rollout, cfg.n_samples, params.experiment.seed)
        samples, unjudged_samples = sample_items(engine, judge, pool, settings, args.model)
        seconds = time.perf_counter() - start
        write_jsonl(out / "greedy.jsonl", greedy)
        write_jsonl(out / "samples.jsonl", samples)
        n_samples = sum(len(r.completions) for r in samples)
        summary = {
            "greedy_accuracy": accuracy_by_split(greedy),
            "sample_accuracy": accuracy_by_split(samples),
            "engine": engine.name,
            "samples": n_samples,
            "samples_per_second": n_samples / seconds,
            "unjudged": unjudged_greedy + unjudged_samples,
        }
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(summary, indent=2) + "\n")
        mlflow.set_tags({"engine": engine.name, "judge": judge.name,
                         "prompt": f"{DIRECT.name}/{DIRECT.version}"})
        mlflow.log_metrics({f"greedy_acc_{s}": v for s, v in summary["greedy_accuracy"].items()})
        mlflow.log_metrics({f"sample_acc_{s}": v for s, v in summary["sample_accuracy"].items()})
        mlflow.log_metric("samples_per_second", summary["samples_per_second"])


if __name__ == "__main__":
    main()

"""Stage `sample@<model>`: greedy answers and n rollout samples per item, every one judged;
with `cot.run`, also greedy chain-of-thought answers to the test items.

    dvc repro sample@base   # dvc.yaml's cmd passes every input and output path
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from recall.config import load_params
from recall.contract import read_items, write_json, write_jsonl
from recall.engines import engine_for, gold_probabilities_of
from recall.errors import run_stage
from recall.judge.factory import open_judge
from recall.latent import write_gold_probabilities, wrong_answer_items
from recall.prompts import COT, DIRECT, has_chat_template
from recall.sampling import (
    accuracy_by_split,
    cot_greedy,
    greedy_settings,
    no_answer_rate,
    rollout_settings,
    sample_items,
)
from recall.tracking import stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", help="the model's name in records and MLflow (e.g. base)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, required=True)
    ap.add_argument("--model-dir", type=Path, required=True, help="the model to sample")
    ap.add_argument("--runs", type=Path, required=True, help="where its records go")
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)
    cfg = params.sampling
    model_dir, out = args.model_dir, args.runs

    # Evaluation: an unreachable LLM judge is an error here, never a score of 0.
    with stage_run(params, f"sample@{args.model}"), open_judge(params.judge, compute=params.compute) as judge:
        import mlflow

        items = read_items(args.items)
        # The one engine of the run, for every model; closed before the judge server stops.
        with engine_for(params, model_dir) as engine:
            start = time.perf_counter()
            greedy_pool = [it for it in items if it.split in cfg.greedy_splits]
            greedy, unjudged_greedy = sample_items(engine, judge, greedy_pool,
                                                   greedy_settings(params.rollout), args.model)
            samples, unjudged_samples = [], 0
            for split in cfg.sample_splits:  # test: pass_k_samples each, others n_samples
                settings = rollout_settings(params.rollout, cfg.samples_for(split),
                                            params.experiment.seed)
                records, unjudged = sample_items(engine, judge,
                                                 [it for it in items if it.split == split],
                                                 settings, args.model)
                samples, unjudged_samples = samples + records, unjudged_samples + unjudged
            seconds = time.perf_counter() - start
            write_jsonl(out / "greedy.jsonl", greedy)
            write_jsonl(out / "samples.jsonl", samples)
            n_samples = sum(len(r.completions) for r in samples)
            cot, unjudged_cot = (_cot(engine, judge, items, params.cot, args.model, out)
                                 if params.cot.run else ({}, 0))
        p_gold = _p_gold(params, model_dir, greedy_pool, greedy, out)
        summary = {
            "greedy_accuracy": accuracy_by_split(greedy),
            "mean_p_gold": p_gold,
            "sample_accuracy": accuracy_by_split(samples),
            "engine": engine.name,
            "samples": n_samples,
            "samples_per_second": n_samples / seconds,
            "unjudged": unjudged_greedy + unjudged_samples + unjudged_cot,
            **cot,
        }
        write_json(args.metrics, summary)
        mlflow.set_tags({"engine": engine.name, "judge": judge.name,
                         "prompt": DIRECT.label, "chat": str(has_chat_template(engine.tokenizer))}
                        | ({"cot_prompt": COT.label} if cot else {}))
        if cot:
            mlflow.log_metric("cot_acc_test", cot["cot_accuracy"])
        mlflow.log_metrics({f"greedy_acc_{s}": v for s, v in summary["greedy_accuracy"].items()})
        mlflow.log_metrics({f"sample_acc_{s}": v for s, v in summary["sample_accuracy"].items()})
        mlflow.log_metric("samples_per_second", summary["samples_per_second"])
        mlflow.log_metrics({f"mean_p_gold_{s}": v for s, v in p_gold.items()})


def _p_gold(params, model_dir: Path, items, greedy, out: Path) -> dict[str, float]:
    """`out`/p_gold.jsonl, after the engine let go of the model (one copy in memory at a
    time). With latent.run off it is written empty, so the stages reading it need no profile
    of their own."""
    probs = (gold_probabilities_of(params, model_dir, items, wrong_answer_items(items, greedy))
             if params.latent.run else ([], []))
    return write_gold_probabilities(out / "p_gold.jsonl", *probs)


def _cot(engine, judge, items, cfg, model: str, out: Path) -> tuple[dict, int]:
    """Greedy chain-of-thought on the test items: `out`/cot.jsonl (judged answers) and
    cot_reasoning.jsonl (the full completions); returns its metrics and unjudged count."""
    test = [it for it in items if it.split == "test"]
    records, reasoning, unjudged = cot_greedy(engine, judge, test, cfg.max_tokens, model)
    write_jsonl(out / "cot.jsonl", records)
    write_jsonl(out / "cot_reasoning.jsonl", reasoning)
    return {"cot_accuracy": accuracy_by_split(records)["test"],
            "cot_no_answer": no_answer_rate(records)}, unjudged


if __name__ == "__main__":
    run_stage(main)

"""Stage `attribution`: GRPO on RL-train partitions by pre-RL accessibility, at matched size.

    dvc repro attribution   # dvc.yaml's cmd passes every input and output path
Partitions RL-train by the base model's correct count among its samples
(`attribution.partitions`, e.g. inaccessible 0, partial 1-64, high 65-128), and with
`attribution.ground_truth` also by the toy world's labels (stored_inaccessible: a biography
was shown but no sample was right; not_stored: none was shown), with `attribution.latent`
by the base's p(gold) labels (tail, absent: recall.latent), cuts each family to one
size, runs GRPO (the grpo section, `attribution.prompts_per_step` prompts per step) on
each for every `attribution.seeds`, and writes greedy answers to
runs/attribution/<partition>/seed<s>/greedy.jsonl and metrics/attribution.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recall.analysis import correct_counts
from recall.compute import is_main_process
from recall.config import load_params
from recall.contract import read_items, read_records, write_json
from recall.errors import run_stage
from recall.ground_truth import fact_exposures, labels_for, read_people, stored_split
from recall.judge.factory import open_judge
from recall.latent import expected_events, latent_groups, read_gold_probabilities
from recall.launcher import relaunch_if_needed
from recall.study import OutputDirs, attribution_config, attribution_subsets, matched_subsets, run_seed
from recall.tracking import rank_stage_run


def _truth_groups(world: Path, train, items, access) -> dict[str, list]:
    """RL-train items by the world's labels: stored but never sampled, and not stored."""
    groups = stored_split(labels_for(train, fact_exposures(read_people(world), items)), access)
    by_id = {it.id: it for it in train}
    return {name: [by_id[i] for i in groups[name]] for name in ("stored_inaccessible", "not_stored")}


def _subsets(train, access, truth, latent, cfg, seed: int, out: dict) -> dict:
    """The accessibility partitions, then the world's split and the base's p(gold) labels,
    each family at its own matched size (recorded in `out`)."""
    subsets = attribution_subsets(train, access, cfg.partitions, cfg.size, seed,
                                  cfg.prompts_per_step)
    out["size"] = len(next(iter(subsets.values())))
    if truth:
        subsets.update(matched_subsets(truth, cfg.size, seed, cfg.prompts_per_step))
        out["truth_size"] = len(subsets["not_stored"])
    if latent:
        subsets.update(matched_subsets(latent, cfg.size, seed, cfg.prompts_per_step))
        out["latent_size"] = len(subsets["tail"])
    return subsets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--items", type=Path, required=True)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--base-samples", type=Path, required=True, help="accessibility comes from them")
    ap.add_argument("--world", type=Path, required=True,
                    help="the toy world's people (attribution.ground_truth)")
    ap.add_argument("--models", type=Path, required=True, help="<models>/<partition>/seed<s>")
    ap.add_argument("--runs", type=Path, required=True, help="<runs>/<partition>/seed<s>")
    ap.add_argument("--checkpoints", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)
    relaunch_if_needed(params, __file__)
    cfg = params.attribution

    # Every rank trains; the main process alone evaluates, logs and writes (run_seed).
    with rank_stage_run(params, "attribution"), \
            open_judge(params.judge, "none", params.compute) as judge:
        import mlflow

        items = read_items(args.items)
        train = [it for it in items if it.split == "train"]
        base = read_records(args.base_samples)
        out_dirs = OutputDirs(args.models, args.runs, args.checkpoints)
        access = correct_counts(base, "train", params.sampling.n_samples)
        # Base p(gold) beside the samples (latent.run): correct rollouts each run can expect.
        p_gold = read_gold_probabilities(args.base_samples.parent / "p_gold.jsonl")
        truth = _truth_groups(args.world, train, items, access) if cfg.ground_truth else {}
        latent = latent_groups(train, p_gold, fact_exposures(read_people(args.world), items),
                               params.latent.absent_quantile) if cfg.latent else {}
        grpo = attribution_config(params, cfg.prompts_per_step)
        out = {"partitions": {}, "size": None, "truth_size": None,
               "expected_correct_rollouts": {}, "rollouts_per_item": grpo.group_size * grpo.epochs}
        for seed in cfg.seeds:
            subsets = _subsets(train, access, truth, latent, cfg, seed, out)
            for name, subset in subsets.items():
                if p_gold is not None:  # what the run could see at all, before it starts
                    out["expected_correct_rollouts"].setdefault(name, {})[f"seed{seed}"] = \
                        expected_events([p_gold[it.id] for it in subset],
                                        grpo.group_size * grpo.epochs)
                summary = run_seed("grpo", params, args.base, subset, items, {}, judge,
                                   f"attribution/{name}", seed, out_dirs.sub(name), cfg=grpo,
                                   dynamics=False, sample=False)
                if is_main_process():
                    summary.pop("dynamics")
                    out["partitions"].setdefault(name, {})[f"seed{seed}"] = summary
                    mlflow.log_metric(f"{name}_seed{seed}_test_acc",
                                      summary["greedy_accuracy"]["test"])
        out["available"] = {name: sum(lo <= access[it.id] <= hi for it in train)
                            for name, (lo, hi) in cfg.partitions.items()}
        out["available"].update({name: len(group) for name, group in {**truth, **latent}.items()})
        if is_main_process():
            write_json(args.metrics, out)


if __name__ == "__main__":
    run_stage(main)

"""The comparative study: every trained method, over seeds, on the one pretrained base.

`train_method` trains one method for one seed (GRPO, RLOO, SFT, the SFT-on-known control,
DPO or online RFT), recording greedy train/test accuracy over normalised training progress;
`evaluate_policy` then gives the trained model the same greedy and sampling analyses as the
base. `attribution_subsets` and `transfer_items` select the RL-train items of the data
attribution and the cross-dataset transfer runs.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from recall.config import Params
from recall.contract import Judge, QAItem, SampleRecord
from recall.judge.rules import RuleJudge
from recall.sampling import greedy_settings, rollout_settings
from recall.study_config import METHODS, GRPOConfig, RLOOConfig


@dataclass(frozen=True)
class OutputDirs:
    """Where one method's seeds go, as the stage's cmd names them: <models>/seed<s>,
    <runs>/seed<s> and <checkpoints>/seed<s>."""

    models: Path
    runs: Path
    checkpoints: Path

    def sub(self, name: str) -> OutputDirs:
        """One variant's dirs inside these (an attribution partition)."""
        return OutputDirs(self.models / name, self.runs / name, self.checkpoints / name)


def method_config(params: Params, method: str):
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    return getattr(params, method)


def reward_judge(cfg: RLOOConfig, judge: Judge) -> Judge:
    """The reward's grader: the judge (paper), or exact match (the reward ablation)."""
    return judge if cfg.reward == "judge" else RuleJudge()


def train_method(method: str, params: Params, model_dir: Path, train: Sequence[QAItem],
                 eval_items: Sequence[QAItem], base_samples: Mapping[str, SampleRecord],
                 judge: Judge, out_dir: Path, checkpoint_dir: Path, seed: int,
                 cfg=None, dynamics: bool = True) -> dict:
    """Train `method` from `model_dir` on `train`; save it to `out_dir`.

    Returns the method's own summary plus `dynamics`: the `ProgressEvaluation` that holds
    greedy accuracy per split of `eval_items` at `study.eval_points` fractions of training
    (none if not `dynamics`) but the last, which is the trained model's evaluation.
    `cfg` overrides the method's params section (attribution runs GRPO with its own batch).
    """
    from recall.baselines import run_dpo, run_rft, run_sft
    from recall.compute import is_main_process, resolve, world_size
    from recall.engines import load_tokenizer
    from recall.evaluation import ProgressEvaluation
    from recall.training import train_rl

    cfg = cfg or method_config(params, method)
    compute = resolve(params.compute)
    tokenizer = load_tokenizer(model_dir)
    select = params.study.select_on == "val"
    if select and not dynamics:  # no curves wanted: evaluate val only, to choose on it
        eval_items = [it for it in eval_items if it.split == "val"]
    progress = ProgressEvaluation(eval_items, judge, tokenizer, params.rollout,
                                  params.study.eval_points if dynamics or select else 0,
                                  select_dir=out_dir / "_val_best" if select else None,
                                  max_batch_tokens=params.sampling.max_batch_tokens)
    if isinstance(cfg, (GRPOConfig, RLOOConfig)):
        result = train_rl(model_dir, train, reward_judge(cfg, judge), cfg, params.rollout,
                          checkpoint_dir, out_dir, seed, compute, report_to=(),
                          max_failure_rate=params.judge.max_failure_rate, callbacks=[progress])
        # judged: this rank's completions; times world_size, every completion of the run.
        result = {"items": len(train), "steps": result["global_step"],
                  "unjudged": result["unjudged"], "judged": result["judged"],
                  "world_size": world_size(), "log_history": result["log_history"],
                  "rank_weights": result["rank_weights"], "resumed_from": result["resumed_from"]}
    elif method in ("sft", "sft_known"):
        result = run_sft(model_dir, train, base_samples, cfg, out_dir, seed, compute, [progress],
                         checkpoint_dir)
    elif method == "dpo":
        result = run_dpo(model_dir, train, base_samples, cfg, out_dir, seed, compute, [progress],
                         checkpoint_dir)
    else:  # rft: progress is rounds done over rounds planned

        def on_round(r, model, tok, save):
            # the last round is the trained model: evaluated here only to choose on val
            if progress.points and (r < cfg.rounds or select) \
                    and progress.record(r / cfg.rounds, r, model) and r < cfg.rounds:
                save(progress.select_dir)  # every rank: a sharded model is gathered
                if is_main_process():
                    progress.kept()

        progress.last_step = cfg.rounds
        result = run_rft(model_dir, train, judge, cfg, params.rollout, out_dir, seed, compute,
                         on_round, params.sampling.max_batch_tokens, checkpoint_dir)
    selected = progress.restore_best(out_dir) if is_main_process() else None
    return {**result, "dynamics": progress, "selected": selected,
            "eval_items_per_rank": progress.items_per_rank}


def evaluate_policy(model_dir: Path, items: Sequence[QAItem], judge: Judge, params: Params,
                    seed: int, name: str, sample: bool = True, split: bool = False
                    ) -> tuple[list[SampleRecord], list[SampleRecord], list[int]]:
    """Greedy answers on `sampling.greedy_splits` and, if `sample`, `sampling.pass_k_samples`
    rollout samples on the test split: the analyses the base model gets, for a trained one,
    through the same engine at the same settings (`sampling.engine`, `compute`; vLLM in a
    fresh process, `recall.engines.completions`), and the items each rank answered. `split`:
    every rank calls this and answers its slice on its own GPU. The main process alone
    grades; the others get empty lists."""
    from recall.engines import completions
    from recall.evaluation import grading_alone
    from recall.sampling import judged_records

    cfg = params.sampling
    jobs = [([it for it in items if it.split in cfg.greedy_splits], greedy_settings(params.rollout))]
    if sample:
        jobs.append(([it for it in items if it.split == "test"],
                     rollout_settings(params.rollout, cfg.samples_for("test"), seed)))
    raw, shares = completions(params, model_dir, jobs, split)
    if raw is None:
        return [], [], []
    records, unjudged = [], 0
    with grading_alone(judge):
        for (job_items, settings), job_raw in zip(jobs, raw):
            got, missing = judged_records(judge, job_items, job_raw, settings, name)
            records.append(got)
            unjudged += missing
    if unjudged:
        raise RuntimeError(f"{name}: the judge gave no verdict on {unjudged} answers")
    return records[0], records[1] if sample else [], shares


def attribution_subsets(train: Sequence[QAItem], access: Mapping[str, int],
                        partitions: Mapping[str, tuple[int, int]], size: int,
                        seed: int, prompts_per_step: int = 1) -> dict[str, list[QAItem]]:
    """RL-train items per accessibility partition, each cut to the same size.

    `access`: the base model's correct count per item; a partition [low, high] takes the
    items with low <= count <= high. `size` 0 matches the smallest partition."""
    missing = [it.id for it in train if it.id not in access]
    if missing:
        raise ValueError(f"no accessibility for {len(missing)} RL-train items, e.g. {missing[:3]}")
    groups = {name: [it for it in train if lo <= access[it.id] <= hi]
              for name, (lo, hi) in partitions.items()}
    return matched_subsets(groups, size, seed, prompts_per_step)


def matched_subsets(groups: Mapping[str, Sequence[QAItem]], size: int, seed: int,
                    prompts_per_step: int = 1) -> dict[str, list[QAItem]]:
    """Each group cut to the same size (`size` 0: the smallest group's). Each is subsampled
    with its own seeded stream, so adding a group leaves the others be. A matched size
    below `prompts_per_step` is refused: GRPO would not take a single step."""
    empty = [name for name, g in groups.items() if not g]
    if empty:
        raise ValueError(f"attribution partitions {empty} hold no RL-train item")
    matched = size or min(len(g) for g in groups.values())
    small = {name: len(g) for name, g in groups.items() if len(g) < matched}
    if small:
        raise ValueError(f"attribution.size {matched} exceeds partitions {small}")
    if matched < prompts_per_step:
        sizes = {name: len(g) for name, g in groups.items()}
        raise ValueError(f"attribution: matched size {matched} is below "
                         f"attribution.prompts_per_step {prompts_per_step}, so GRPO would take "
                         f"no step; partition sizes {sizes}. Lower attribution.prompts_per_step "
                         "or widen attribution.partitions")
    return {name: random.Random(f"attribution-{seed}-{name}").sample(list(g), matched)
            for name, g in groups.items()}


def family(item: QAItem, by: str) -> str:
    """The "dataset" an item belongs to for transfer: its relation (toy) or its dataset."""
    if by == "dataset":
        return item.dataset
    if item.fact is None:
        raise ValueError(f"item {item.id} has no fact; transfer.by 'relation' needs facts")
    return item.fact.relation


def transfer_items(items: Sequence[QAItem], by: str, source: Sequence[str],
                   target: Sequence[str]) -> tuple[list[QAItem], list[QAItem], list[QAItem]]:
    """(source RL-train, source test, target test). Source and target must not overlap.

    Leakage between source train and target test is already excluded: `validate` checks
    every test item against every training item, a superset of this pair.
    """
    overlap = set(source) & set(target)
    if overlap:
        raise ValueError(f"transfer source and target share {sorted(overlap)}")
    pick = {name: [it for it in items if family(it, by) in names]
            for name, names in (("source", source), ("target", target))}
    train = [it for it in pick["source"] if it.split == "train"]
    src_test = [it for it in pick["source"] if it.split == "test"]
    tgt_test = [it for it in pick["target"] if it.split == "test"]
    for what, got in (("source train", train), ("source test", src_test),
                      ("target test", tgt_test)):
        if not got:
            raise ValueError(f"transfer: no {what} items for transfer.by={by!r} "
                             f"source={list(source)} target={list(target)}")
    return train, src_test, tgt_test


def attribution_config(params: Params, prompts_per_step: int) -> GRPOConfig:
    """The grpo section with the attribution runs' batch size (a partition is small)."""
    return dataclasses.replace(params.grpo, prompts_per_step=prompts_per_step,
                               micro_batch_prompts=min(prompts_per_step,
                                                       params.grpo.micro_batch_prompts))


def run_seed(method: str, params: Params, base_dir: Path, train: Sequence[QAItem],
             items: Sequence[QAItem], base_samples: Mapping[str, SampleRecord], judge: Judge,
             name: str, seed: int, out: OutputDirs, cfg=None, dynamics: bool = True,
             sample: bool = True, latent: Sequence[QAItem] | None = None) -> dict:
    """Train one seed of `method` into `out.models`/seed<s> (checkpoints in
    `out.checkpoints`/seed<s>) and evaluate it into `out.runs`/seed<s>/{greedy,samples}.jsonl;
    returns its summary with dynamics. `name` labels its records (e.g. grpo/seed0).

    `dynamics`: greedy train/test accuracy during training. `sample`: n rollout samples per
    test item (pass@k). `latent` (the base's wrong test answers, `wrong_answer_items`):
    p(gold) of every evaluated item after training, and of those answers (recall.latent).
    Attribution and transfer runs take none of them: final greedy only."""
    import shutil

    from recall.compute import barrier, is_main_process
    from recall.contract import write_jsonl
    from recall.sampling import accuracy_by_split

    model_dir, run_dir = out.models / f"seed{seed}", out.runs / f"seed{seed}"
    stamp = seed_stamp(params, method, seed, base_dir, judge, cfg,
                       [train, items, sorted(base_samples.items()), dynamics, sample, latent])
    if (kept := finished_summary(run_dir, model_dir, stamp)) is not None:
        print(f"[recall] {name}/seed{seed}: kept, finished before under the same inputs "
              f"({run_dir / FINISHED})", flush=True)
        return kept if is_main_process() else {}
    if is_main_process():  # a seed's outputs are rebuilt whole, never mixed with a stale run's
        for path in (model_dir, run_dir):
            shutil.rmtree(path, ignore_errors=True)
    barrier()
    eval_items = [it for it in items if it.split in ("train", "val", "test")]
    result = train_method(method, params, base_dir, train, eval_items, base_samples, judge,
                          model_dir, out.checkpoints / f"seed{seed}", seed, cfg,
                          dynamics=dynamics)
    peak = _release_accelerator_memory()  # the evaluation engine takes its share next
    greedy, samples, shares = evaluate_policy(model_dir, items, judge, params, seed,
                                              f"{name}/seed{seed}", sample, split=True)
    if not is_main_process():  # every rank answered its slice; grading and files: one
        return {}
    write_jsonl(run_dir / "greedy.jsonl", greedy)
    if sample:
        write_jsonl(run_dir / "samples.jsonl", samples)
    summary = {k: v for k, v in result.items() if k != "log_history"}
    summary["final_eval_items_per_rank"] = shares
    summary["greedy_accuracy"] = accuracy_by_split(greedy)
    summary["dynamics"] = result["dynamics"].finish(summary["greedy_accuracy"])
    if sample:
        summary["pass_at_1_test"] = accuracy_by_split(samples)["test"]
    if latent is not None:  # p(gold) after training, beside the sample records
        from recall.engines import gold_probabilities_of
        from recall.latent import write_gold_probabilities

        summary["mean_p_gold"] = write_gold_probabilities(
            run_dir / "p_gold.jsonl", *gold_probabilities_of(params, model_dir, eval_items, latent))
    if peak is not None:
        summary["peak_gpu_gib_training"] = peak
    # Last: only a seed whose every output is written counts as finished.
    (run_dir / FINISHED).write_text(json.dumps({"stamp": stamp, "summary": summary}, indent=1))
    return summary


# A seed's marker in runs/<method>/seed<s>: the stamp of everything its outputs depend on,
# and its summary. A rerun of the stage (a crash after some seeds, seeds added) keeps a seed
# whose stamp matches instead of retraining it (dvc.yaml: the outputs persist).
FINISHED = "finished.json"


def seed_stamp(params: Params, method: str, seed: int, base_dir: Path, judge: Judge, cfg,
               inputs: Sequence) -> str:
    """A hash of everything one seed's outputs depend on: the params but the seed list, the
    base weights, the judge, `inputs` (items, base samples, options) and the code (the recall
    package and the stage script), so any change that could move an output retrains it."""
    import hashlib
    import sys

    import recall
    from recall.config import as_dict
    from recall.staging import weights_digest
    from recall.training import judge_identity

    settings = as_dict(params)
    settings["study"].pop("seeds")
    code = hashlib.sha256()
    script = getattr(sys.modules["__main__"], "__file__", None)
    for path in sorted(Path(recall.__file__).parent.rglob("*.py")) + ([Path(script)] if script else []):
        code.update(path.read_bytes())

    def plain(obj):
        return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else str(obj)
    blob = json.dumps([settings, method, seed, cfg, weights_digest(base_dir), judge_identity(judge),
                       list(inputs), code.hexdigest()], sort_keys=True, default=plain)
    return hashlib.sha256(blob.encode()).hexdigest()


def finished_summary(run_dir: Path, model_dir: Path, stamp: str) -> dict | None:
    """The summary of a seed finished under `stamp`, or None (not finished, or other inputs)."""
    marker = run_dir / FINISHED
    if not (marker.exists() and model_dir.is_dir()):
        return None
    try:
        done = json.loads(marker.read_text())
    except ValueError:
        return None  # cut short while written: not finished
    return done["summary"] if done.get("stamp") == stamp else None


def prune_seeds(out: OutputDirs, seeds: Sequence[int]) -> None:
    """Remove the seed dirs of seeds no longer in `seeds` (outputs persist across reruns)."""
    import shutil

    keep = {f"seed{s}" for s in seeds}
    for root in (out.models, out.runs, out.checkpoints):
        for path in root.glob("seed*") if root.is_dir() else ():
            if path.is_dir() and path.name not in keep:
                shutil.rmtree(path)


def _release_accelerator_memory() -> float | None:
    """Free the trainer's GPU memory; returns its peak in GiB (None without CUDA)."""
    import gc

    import torch

    gc.collect()
    if not torch.cuda.is_available():
        return None
    peak = torch.cuda.max_memory_allocated() / 1024 ** 3
    torch.cuda.empty_cache()
    return peak

"""Thin wrappers over TRL's on-policy RL: GRPO and RLOO with the judge's binary reward.

Batch units: the params speak in prompts (`prompts_per_step`, `micro_batch_prompts`);
TRL speaks in completions per device. `rl_arguments` converts, dividing by the number of
training processes, so one optimizer step always sees `prompts_per_step * group_size`
completions, as in the paper (128 prompts x 5), on one CPU or on 16 GPUs.

Under `accelerate launch` every rank runs `train_rl`; only the main process writes the
fingerprint, deletes checkpoints and saves the tokenizer (the trainer saves the model
itself, gathering sharded weights).

TRL 1.16 has no PPO trainer (it was experimental and took a reward *model*, not a reward
function), so RLOO stands in as the second RL algorithm for the algorithm-robustness
comparison: it takes recall's judge reward exactly as GRPO does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Sequence

from recall.compute import (
    Resolved,
    is_main_process,
    load_model,
    per_device,
    trainer_kwargs,
    weights_on_every_rank,
)
from recall.config import RolloutConfig, fingerprint
from recall.contract import Judge, QAItem
from recall.judge.interface import reward_function
from recall.prompts import DIRECT
from recall.staging import drop_model_cards, save_tokenizer, weights_digest
from recall.study_config import GRPOConfig, RLOOConfig

FINGERPRINT_FILE = "recall_fingerprint.json"


def rl_dataset(items: Sequence[QAItem], tokenizer):
    """A datasets.Dataset with the prompt (conversational for a chat model) plus the
    columns the reward needs."""
    from datasets import Dataset

    return Dataset.from_dict({
        "prompt": [DIRECT.training_prompt(it.question, tokenizer) for it in items],
        "question": [it.question for it in items],
        "answers": [list(it.answers) for it in items],
        "id": [it.id for it in items],
    })


def rl_arguments(cfg: RLOOConfig, rollout: RolloutConfig, output_dir: Path, seed: int,
                 compute: Resolved, report_to: Sequence[str] = ("mlflow",)):
    """TRL GRPOConfig (or RLOOConfig, for an `RLOOConfig` section) from recall's params, with
    prompt counts turned into completion counts per device."""
    from trl import GRPOConfig as TRLGRPOConfig
    from trl import RLOOConfig as TRLRLOOConfig

    section = "grpo" if isinstance(cfg, GRPOConfig) else "rloo"
    if cfg.prompts_per_step % cfg.micro_batch_prompts:
        raise ValueError(f"{section}.prompts_per_step ({cfg.prompts_per_step}) must be a multiple "
                         f"of {section}.micro_batch_prompts ({cfg.micro_batch_prompts})")
    micro, accumulation = per_device(cfg.prompts_per_step, cfg.micro_batch_prompts,
                                     f"{section}.prompts_per_step")
    extra = {"loss_type": cfg.loss_type} if isinstance(cfg, GRPOConfig) else {}
    return (TRLGRPOConfig if isinstance(cfg, GRPOConfig) else TRLRLOOConfig)(
        output_dir=str(output_dir),
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=micro * cfg.group_size,  # completions
        gradient_accumulation_steps=accumulation,
        num_generations=cfg.group_size,
        num_train_epochs=cfg.epochs,
        num_iterations=1,  # one policy update per rollout batch: on-policy, as in the paper
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        temperature=rollout.temperature,
        top_p=rollout.top_p,
        top_k=0 if rollout.top_k < 0 else rollout.top_k,  # TRL: 0 disables top-k
        max_completion_length=rollout.max_tokens,
        # A completion cut at max_tokens has no final answer: it gets no gradient, rather
        # than a reward for half an answer.
        mask_truncated_completions=True,
        **vllm_arguments(rollout, compute),
        lr_scheduler_type="constant",
        warmup_steps=0,
        disable_dropout=True,
        logging_steps=1,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        **trainer_kwargs(compute, seed, report_to, save_strategy="steps"),
        remove_unused_columns=False,
        **extra,
    )


def vllm_arguments(rollout: RolloutConfig, compute: Resolved) -> dict:
    """TRL's vLLM rollout fields for `rollout.vllm` (none: the policy's own generate)."""
    if rollout.vllm == "none":
        return {"use_vllm": False}
    common = {"use_vllm": True, "vllm_mode": rollout.vllm}
    if rollout.vllm == "server":
        if not rollout.vllm_server_url:
            raise ValueError("rollout.vllm is 'server' but rollout.vllm_server_url is empty")
        return {**common, "vllm_server_base_url": rollout.vllm_server_url}
    # Colocated, the rollout engine shares the trainer's GPUs and takes its ledger share of
    # their memory (compute.rollout_engine); the weights move into it after every step.
    share = compute.rollout_engine
    if share is None:
        return common
    return {**common, "vllm_gpu_memory_utilization": share.gpu_memory_utilization,
            "vllm_tensor_parallel_size": share.tensor_parallel_size}


def resume_point(output_dir: Path, stamp: str, complete: str = "trainer_state.json") -> str | None:
    """The last complete checkpoint in `output_dir` if it was written under the same settings.

    A checkpoint from other params would silently mix two experiments, so it is removed.
    """
    marker = output_dir / FINGERPRINT_FILE
    if is_main_process():
        if output_dir.exists() and (not marker.exists()
                                    or json.loads(marker.read_text()) != stamp):
            shutil.rmtree(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(stamp))
    else:
        _wait_for_marker(marker, stamp)
    return last_complete_checkpoint(output_dir, complete)


def last_complete_checkpoint(output_dir: Path, complete: str = "trainer_state.json") -> str | None:
    """The highest `checkpoint-<n>` holding its `complete` file (JSON the trainer writes last:
    transformers' trainer_state.json, RFT's rounds). A run killed while saving leaves one
    without it; resuming from that would fail on every rerun, so it is passed over, and the
    main process removes it (another rank's answer cannot change: it lacks the file)."""
    import re

    done, partial = [], []
    for path in output_dir.glob("checkpoint-*"):
        if not (path.is_dir() and re.fullmatch(r"checkpoint-\d+", path.name)):
            continue
        try:
            json.loads((path / complete).read_text())
            done.append(path)
        except (OSError, ValueError):
            partial.append(path)
    if partial and is_main_process():
        for path in partial:
            print(f"[recall] {path}: no {complete}, written by a run killed while saving; "
                  f"removed, not resumed", flush=True)
            shutil.rmtree(path, ignore_errors=True)
    if not done:
        return None
    return str(max(done, key=lambda p: int(p.name.split("-")[1])))


def _wait_for_marker(marker: Path, stamp: str, timeout_s: float = 600) -> None:
    """Wait until the main process has cleared stale checkpoints and stamped the directory.

    No process group exists yet here (the trainer makes it), so the ranks meet on the
    shared checkpoint directory instead of a collective barrier."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if json.loads(marker.read_text()) == stamp:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{marker}: the main process did not stamp the checkpoint directory "
                       f"within {timeout_s:.0f} s (is it on storage every rank shares?)")


def train_rl(model_dir: Path, items: Sequence[QAItem], judge: Judge, cfg: RLOOConfig,
             rollout: RolloutConfig, checkpoint_dir: Path, out_dir: Path, seed: int,
             compute: Resolved, report_to: Sequence[str] = ("mlflow",), max_failure_rate: float = 0.0,
             callbacks: Sequence = ()) -> dict:
    """Run GRPO (a `GRPOConfig`) or RLOO (an `RLOOConfig`) from `model_dir` on `items`;
    resume from `checkpoint_dir` when possible.

    Checkpoints exist to survive a crash or a kill: an interrupted run with the same
    settings resumes; a finished run clears them, so a rerun (e.g. after a code change)
    trains afresh. Saves the final policy (model + tokenizer) to `out_dir`; returns the
    log history and how many completions the judge could not grade.
    """
    from trl import GRPOTrainer, RLOOTrainer

    from recall.engines import load_tokenizer

    stamp = "-".join([fingerprint(cfg, rollout), f"seed{seed}", weights_digest(model_dir),
                      judge_identity(judge), _items_stamp(items)])
    resume = resume_point(checkpoint_dir, stamp)
    tokenizer = load_tokenizer(model_dir)
    reward = reward_function(judge, max_failure_rate)
    trainer_cls = GRPOTrainer if isinstance(cfg, GRPOConfig) else RLOOTrainer
    trainer = trainer_cls(
        model=load_model(model_dir, compute),  # fp32 master weights, as every method
        reward_funcs=[reward],
        args=rl_arguments(cfg, rollout, checkpoint_dir, seed, compute, report_to),
        train_dataset=rl_dataset(items, tokenizer),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(out_dir))  # every rank: sharded weights are gathered
    if is_main_process():
        save_tokenizer(tokenizer, out_dir)
        drop_model_cards(checkpoint_dir)
        for done in checkpoint_dir.glob("checkpoint-*"):
            shutil.rmtree(done)
    return {"resumed_from": resume, "log_history": trainer.state.log_history,
            "global_step": trainer.state.global_step, "unjudged": reward.unjudged,
            "judged": reward.judged, "rank_weights": weights_on_every_rank(trainer.model)}


train_grpo = train_rl  # GRPO is train_rl with the grpo section


def judge_identity(judge) -> str:
    """What grades the reward: the rule judge, or the LLM judge's model and prompt version."""
    prompt = getattr(judge, "prompt", None)
    return f"{judge.name}:{getattr(judge, 'identity', '')}:{prompt.name + prompt.version if prompt else ''}"


def _items_stamp(items: Sequence[QAItem]) -> str:
    blob = json.dumps([[it.id, it.question, list(it.answers)] for it in items])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]



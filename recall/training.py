"""Thin wrappers over TRL's on-policy RL: GRPO and RLOO with the judge's binary reward.

Batch units: the params speak in prompts (`prompts_per_step`, `micro_batch_prompts`);
TRL speaks in completions. `rl_arguments` converts, so one optimizer step always sees
`prompts_per_step * group_size` completions, as in the paper (128 prompts x 5).

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

from recall.config import RolloutConfig, fingerprint
from recall.study_config import GRPOConfig, RLOOConfig
from recall.contract import Judge, QAItem
from recall.judge import reward_function
from recall.prompts import DIRECT
from recall.verdict_cache import weights_digest

FINGERPRINT_FILE = "recall_fingerprint.json"


def rl_dataset(items: Sequence[QAItem]):
    """A datasets.Dataset with the prompt plus the columns the reward needs."""
    from datasets import Dataset

    return Dataset.from_dict({
        "prompt": [DIRECT.render(it.question) for it in items],
        "question": [it.question for it in items],
        "answers": [list(it.answers) for it in items],
        "id": [it.id for it in items],
    })


def rl_arguments(cfg: RLOOConfig, rollout: RolloutConfig, output_dir: Path, seed: int,
                 report_to: Sequence[str] = ("mlflow",)):
    """TRL GRPOConfig (or RLOOConfig, for an `RLOOConfig` section) from recall's params, with
    prompt counts turned into completion counts."""
    from trl import GRPOConfig as TRLGRPOConfig, RLOOConfig as TRLRLOOConfig

    section = "grpo" if isinstance(cfg, GRPOConfig) else "rloo"
    if cfg.prompts_per_step % cfg.micro_batch_prompts:
        raise ValueError(f"{section}.prompts_per_step ({cfg.prompts_per_step}) must be a multiple "
                         f"of {section}.micro_batch_prompts ({cfg.micro_batch_prompts})")
    extra = {"loss_type": cfg.loss_type} if isinstance(cfg, GRPOConfig) else {}
    return (TRLGRPOConfig if isinstance(cfg, GRPOConfig) else TRLRLOOConfig)(
        output_dir=str(output_dir),
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.micro_batch_prompts * cfg.group_size,  # completions
        gradient_accumulation_steps=cfg.prompts_per_step // cfg.micro_batch_prompts,
        num_generations=cfg.group_size,
        num_train_epochs=cfg.epochs,
        num_iterations=1,  # one policy update per rollout batch: on-policy, as in the paper
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        temperature=rollout.temperature,
        top_p=rollout.top_p,
        top_k=0 if rollout.top_k < 0 else rollout.top_k,  # TRL: 0 disables top-k
        max_completion_length=rollout.max_tokens,
        lr_scheduler_type="constant",
        warmup_steps=0,
        disable_dropout=True,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        # TRL defaults to bf16 autocast and gradient checkpointing, made for big models on
        # GPUs; on a CPU without bf16 units both make a tiny model ~10x slower.
        bf16=False,
        gradient_checkpointing=False,
        report_to=list(report_to),
        remove_unused_columns=False,
        **extra,
    )


grpo_arguments = rl_arguments  # the name the sweep and older callers use


def _resume_point(output_dir: Path, stamp: str) -> str | None:
    """The last checkpoint in `output_dir` if it was written under the same settings.

    A checkpoint from other params would silently mix two experiments, so it is removed.
    """
    from transformers.trainer_utils import get_last_checkpoint

    marker = output_dir / FINGERPRINT_FILE
    if output_dir.exists() and (not marker.exists() or json.loads(marker.read_text()) != stamp):
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(stamp))
    return get_last_checkpoint(str(output_dir))


def train_rl(model_dir: Path, items: Sequence[QAItem], judge: Judge, cfg: RLOOConfig,
             rollout: RolloutConfig, checkpoint_dir: Path, out_dir: Path, seed: int,
             report_to: Sequence[str] = ("mlflow",), max_failure_rate: float = 0.0,
             callbacks: Sequence = ()) -> dict:
    """Run GRPO (a `GRPOConfig`) or RLOO (an `RLOOConfig`) from `model_dir` on `items`;
    resume from `checkpoint_dir` when possible.

    Checkpoints exist to survive a crash or a kill: an interrupted run with the same
    settings resumes; a finished run clears them, so a rerun (e.g. after a code change)
    trains afresh. Saves the final policy (model + tokenizer) to `out_dir`; returns the
    log history and how many completions the judge could not grade.
    """
    from transformers import AutoTokenizer
    from trl import GRPOTrainer, RLOOTrainer

    stamp = "-".join([fingerprint(cfg, rollout), f"seed{seed}", weights_digest(model_dir),
                      judge_identity(judge), _items_stamp(items)])
    resume = _resume_point(checkpoint_dir, stamp)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    reward = reward_function(judge, max_failure_rate)
    trainer_cls = GRPOTrainer if isinstance(cfg, GRPOConfig) else RLOOTrainer
    trainer = trainer_cls(
        model=str(model_dir),
        reward_funcs=[reward],
        args=rl_arguments(cfg, rollout, checkpoint_dir, seed, report_to),
        train_dataset=rl_dataset(items),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(out_dir)
    for done in checkpoint_dir.glob("checkpoint-*"):
        shutil.rmtree(done)
    return {"resumed_from": resume, "log_history": trainer.state.log_history,
            "global_step": trainer.state.global_step, "unjudged": reward.unjudged,
            "judged": reward.judged}


train_grpo = train_rl  # GRPO is train_rl with the grpo section


def judge_identity(judge) -> str:
    """What grades the reward: the rule judge, or the LLM judge's model and prompt version."""
    prompt = getattr(judge, "prompt", None)
    return f"{judge.name}:{getattr(judge, 'identity', '')}:{prompt.name + prompt.version if prompt else ''}"


def _items_stamp(items: Sequence[QAItem]) -> str:
    blob = json.dumps([[it.id, it.question, list(it.answers)] for it in items])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]



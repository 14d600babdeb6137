"""The training baselines RL is compared with, as thin wrappers over TRL.

- SFT on gold answers (TRL SFTTrainer): off-policy, positive-only.
- DPO on static pairs from the base model's own samples (TRL DPOTrainer): off-policy,
  contrastive. The pairing rule is `dpo_pairs`.
- Online rejection-sampling fine-tuning (RFT): rounds of sampling from the latest model,
  judging, and SFT on the correct samples: on-policy, positive-only.

Every method starts from the same base model and sees the same RL-train items.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from recall.compute import (
    Resolved,
    is_main_process,
    load_model,
    per_device,
    trainer_kwargs,
    weights_on_every_rank,
)
from recall.config import RolloutConfig
from recall.contract import Judge, QAItem, SampleRecord
from recall.judge.rules import normalize_answer
from recall.metrics import majority_vote
from recall.prompts import DIRECT, has_chat_template
from recall.sampling import rollout_settings
from recall.staging import save_model, save_tokenizer
from recall.study_config import DPOConfig, RFTConfig, SFTConfig


@dataclass(frozen=True)
class DPOPair:
    item_id: str
    prompt: str  # the question; the prompt style renders it for the model
    chosen: str
    rejected: str
    chosen_from: str  # "sample" (a judged-correct sample) or "gold" (none was correct)


def known_items(items: Sequence[QAItem], base_samples: Mapping[str, SampleRecord],
                min_accessibility: int) -> list[QAItem]:
    """Items the base model answered right in at least `min_accessibility` of its samples.

    0 keeps every item. An item without base samples is an error, not silently dropped.
    """
    if min_accessibility <= 0:
        return list(items)
    missing = [it.id for it in items if it.id not in base_samples]
    if missing:
        raise ValueError(f"no base samples for {len(missing)} items, e.g. {missing[:3]}")
    return [it for it in items if sum(base_samples[it.id].scores) >= min_accessibility]


def _most_common(completions: Sequence[str]) -> str:
    """The most frequent completion by normalised form; ties go to the one seen first."""
    normed = [normalize_answer(c) for c in completions]
    return completions[normed.index(majority_vote(normed))]


def dpo_pairs(items: Sequence[QAItem], base_samples: Mapping[str, SampleRecord]) -> list[DPOPair]:
    """One static preference pair per item, from the base model's judged samples.

    The rule:
    - chosen: the most frequent judged-correct sample (by normalised answer; ties go to the
      sample seen first); the gold answer (the first alias) when no sample is correct;
    - rejected: the most frequent judged-wrong non-empty sample, same tie rule;
    - an item with no judged-wrong non-empty sample gives no pair: nothing to push down.
    """
    pairs = []
    for it in items:
        rec = base_samples.get(it.id)
        if rec is None:
            raise ValueError(f"no base samples for item {it.id}")
        right = [c for c, s in zip(rec.completions, rec.scores) if s == 1 and c.strip()]
        wrong = [c for c, s in zip(rec.completions, rec.scores) if s == 0 and c.strip()]
        if not wrong:
            continue
        chosen, source = (_most_common(right), "sample") if right else (it.answers[0], "gold")
        pairs.append(DPOPair(it.id, it.question, chosen, _most_common(wrong), source))
    return pairs


def training_completion(answer: str, tokenizer):
    """An answer as a TRL completion: an assistant turn for a chat model (its template adds
    the end of turn), else the pretraining QA format (space, answer, space, EOS)."""
    if has_chat_template(tokenizer):
        return [{"role": "assistant", "content": answer.strip()}]
    return f" {answer.strip()} {tokenizer.eos_token}"


# Micro batches of at most this many examples per forward pass; accumulation fills the rest.
MICRO_BATCH = 32


def _common_args(cfg_lr: float, epochs: int, batch_size: int, output_dir: Path, seed: int,
                 compute: Resolved, report_to: Sequence[str], what: str,
                 save_steps: int | None = None) -> dict:
    """Trainer fields shared by SFT, DPO and RFT: `batch_size` examples per optimizer step
    over all processes, the run's compute, a constant learning rate. `save_steps`: resumable
    checkpoints (weights and optimizer) that often, as the RL trainers keep; None (RFT's
    rounds): saved only to choose on val, weights alone."""
    micro, accumulation = per_device(batch_size, MICRO_BATCH, what)
    if save_steps is None:  # the best so far lives on as hard links (recall.evaluation)
        saving = dict(save_only_model=True, save_total_limit=1, **trainer_kwargs(compute, seed, report_to))
    else:
        saving = dict(save_steps=save_steps, save_total_limit=2,
                      **trainer_kwargs(compute, seed, report_to, save_strategy="steps"))
    return dict(output_dir=str(output_dir), learning_rate=cfg_lr, num_train_epochs=epochs,
                per_device_train_batch_size=micro, gradient_accumulation_steps=accumulation,
                lr_scheduler_type="constant", warmup_steps=0, logging_steps=1,
                disable_tqdm=False, **saving)


def _resumed_train(trainer, checkpoint_dir: Path, stamp: str) -> str | None:
    """Train from the last checkpoint written under `stamp` (None: from the start), then
    clear the checkpoints: a finished run leaves none, so a rerun trains afresh."""
    from recall.staging import drop_model_cards
    from recall.training import resume_point

    resume = resume_point(checkpoint_dir, stamp)
    trainer.train(resume_from_checkpoint=resume)
    if is_main_process():
        drop_model_cards(checkpoint_dir)
        _drop_checkpoints(checkpoint_dir)
    return resume


def sft_examples(pairs: Sequence[tuple[QAItem, str]], tokenizer):
    """A prompt-completion datasets.Dataset: the direct prompt, then the answer."""
    from datasets import Dataset

    return Dataset.from_dict({
        "prompt": [DIRECT.training_prompt(it.question, tokenizer) for it, _ in pairs],
        "completion": [training_completion(a, tokenizer) for _, a in pairs]})


def train_sft(model, tokenizer, examples: Sequence[tuple[QAItem, str]], lr: float, epochs: int,
              batch_size: int, work_dir: Path, seed: int, compute: Resolved,
              report_to: Sequence[str] = (), callbacks: Sequence = (), what: str = "sft",
              resume: tuple[int, str] | None = None):
    """SFT on (item, answer) pairs with loss on the completion only; returns the trainer.
    `resume` (save_steps, stamp): checkpoints in `work_dir`, resumed from when the stamp
    matches (the trainer's `resumed_from` says which)."""
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    if not examples:
        raise ValueError("SFT on zero examples: no item passed the filter")
    args = TRLSFTConfig(**_common_args(lr, epochs, batch_size, work_dir, seed, compute, report_to,
                                       f"{what}.batch_size", resume[0] if resume else None),
                        completion_only_loss=True, packing=False, max_length=None)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=sft_examples(examples, tokenizer),
                         callbacks=list(callbacks))
    if resume is None:
        trainer.train()
        trainer.resumed_from = None
    else:
        trainer.resumed_from = _resumed_train(trainer, work_dir, resume[1])
    return trainer


def _stamp(cfg, seed: int, model_dir: Path, examples) -> str:
    """What a checkpoint was written under: the section, the seed, the base weights and the
    examples; a checkpoint of anything else is removed, not resumed (recall.training)."""
    from recall.config import fingerprint
    from recall.staging import weights_digest

    return "-".join([fingerprint(cfg), f"seed{seed}", weights_digest(model_dir), _digest(examples)])


def run_sft(model_dir: Path, items: Sequence[QAItem], base_samples: Mapping[str, SampleRecord],
            cfg: SFTConfig, out_dir: Path, seed: int, compute: Resolved,
            callbacks: Sequence = (), checkpoint_dir: Path | None = None) -> dict:
    """SFT on gold answers (first alias) of the items that pass `cfg.min_accessibility`;
    resumable from `checkpoint_dir` (default: a work dir inside `out_dir`)."""
    from recall.engines import load_tokenizer

    kept = known_items(items, base_samples, cfg.min_accessibility)
    examples = [(it, it.answers[0]) for it in kept]
    tokenizer = load_tokenizer(model_dir, padding_side=None)
    model = load_model(model_dir, compute)
    stamp = _stamp(cfg, seed, model_dir, [(it.id, a) for it, a in examples])
    trainer = train_sft(model, tokenizer, examples, cfg.learning_rate, cfg.epochs, cfg.batch_size,
                        checkpoint_dir or out_dir / "_work", seed, compute, callbacks=callbacks,
                        resume=(cfg.save_steps, stamp))
    _save(trainer, tokenizer, out_dir)
    return {"items": len(kept), "steps": trainer.state.global_step,
            "resumed_from": trainer.resumed_from,
            "log_history": trainer.state.log_history,
            "rank_weights": weights_on_every_rank(trainer.model)}


def run_dpo(model_dir: Path, items: Sequence[QAItem], base_samples: Mapping[str, SampleRecord],
            cfg: DPOConfig, out_dir: Path, seed: int, compute: Resolved,
            callbacks: Sequence = (), checkpoint_dir: Path | None = None) -> dict:
    """DPO (the base model as reference) on `dpo_pairs` of the items; resumable from
    `checkpoint_dir` (default: a work dir inside `out_dir`)."""
    from datasets import Dataset
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from recall.engines import load_tokenizer

    pairs = dpo_pairs(items, base_samples)
    if not pairs:
        raise ValueError("DPO on zero pairs: no item has a judged-wrong sample")
    tokenizer = load_tokenizer(model_dir, padding_side=None)
    data = Dataset.from_dict({
        "prompt": [DIRECT.training_prompt(p.prompt, tokenizer) for p in pairs],
        "chosen": [training_completion(p.chosen, tokenizer) for p in pairs],
        "rejected": [training_completion(p.rejected, tokenizer) for p in pairs]})
    work = checkpoint_dir or out_dir / "_work"
    args = TRLDPOConfig(**_common_args(cfg.learning_rate, cfg.epochs, cfg.batch_size, work, seed,
                                       compute, (), "dpo.batch_size", cfg.save_steps),
                        beta=cfg.beta)
    trainer = DPOTrainer(model=load_model(model_dir, compute), args=args,
                         processing_class=tokenizer, train_dataset=data, callbacks=list(callbacks))
    resumed = _resumed_train(trainer, work, _stamp(cfg, seed, model_dir,
                                                   [dataclasses.astuple(p) for p in pairs]))
    _save(trainer, tokenizer, out_dir)
    return {"items": len(pairs), "chosen_from_gold": sum(p.chosen_from == "gold" for p in pairs),
            "resumed_from": resumed,
            "steps": trainer.state.global_step, "log_history": trainer.state.log_history,
            "rank_weights": weights_on_every_rank(trainer.model)}


def accepted_samples(records: Sequence[SampleRecord],
                     items: Sequence[QAItem]) -> list[tuple[QAItem, str]]:
    """RFT's acceptance rule: per item, each distinct (normalised) non-empty completion the
    judge called correct, once, in sampling order."""
    by_id = {it.id: it for it in items}
    accepted = []
    for rec in records:
        seen = set()
        for c, s in zip(rec.completions, rec.scores):
            if s == 1 and c.strip() and normalize_answer(c) not in seen:
                seen.add(normalize_answer(c))
                accepted.append((by_id[rec.id], c))
    return accepted


def run_rft(model_dir: Path, items: Sequence[QAItem], judge: Judge, cfg: RFTConfig,
            rollout: RolloutConfig, out_dir: Path, seed: int, compute: Resolved,
            on_round: Callable[[int, object, object, Callable], None] | None = None,
            max_batch_tokens: int = 131072, checkpoint_dir: Path | None = None) -> dict:
    """Online rejection-sampling fine-tuning: `cfg.rounds` times, sample
    `cfg.samples_per_item` completions per item from the latest model (rollout settings),
    judge them, and fine-tune on the distinct correct ones.

    The model samples where it trains: on this rank's device, with real weights on every
    rank. Each rank samples its share of the items; the main process judges them all and
    every rank fine-tunes on the accepted set it broadcasts, so no rank can take a branch
    the others do not. `on_round(r, model, tokenizer, save)` runs after each round on every
    rank (the training-dynamics evaluation); `save(path)` saves the current model from
    every rank together. With `checkpoint_dir`, each round's model is kept there, and a rerun
    under the same settings goes on from the last round kept (rounds are seeded by number,
    and each fine-tunes with a fresh optimizer, so a resumed run trains the same model)."""
    from recall.compute import from_main, gather_to_main, process_group
    from recall.engines import load_tokenizer
    from recall.training import judge_identity, resume_point

    process_group(compute)  # the ranks agree on round 1's samples before any trainer exists
    tokenizer = load_tokenizer(model_dir)
    resume = None
    if checkpoint_dir is not None:
        resume = resume_point(checkpoint_dir, _stamp(cfg, seed, model_dir, [
            [it.id for it in items], judge_identity(judge), dataclasses.astuple(rollout)]),
            complete=ROUNDS)
    rounds = json.loads((Path(resume) / ROUNDS).read_text()) if resume else []
    model = load_model(resume or model_dir, compute, on_device=True)
    trainer = None
    for r in range(len(rounds) + 1, cfg.rounds + 1):
        accepted = from_main(_accepted_this_round(model, tokenizer, items, judge, rollout, cfg,
                                                  seed * 1000 + r, max_batch_tokens))
        # What each rank is about to train on, as the main process sees it (one digest
        # per rank): a rank on another set would silently train another model.
        held = gather_to_main(_digest([(it.id, c) for it, c in accepted]))
        rounds.append({"round": r, "accepted": len(accepted),
                       "items_with_correct": len({it.id for it, _ in accepted}),
                       "accepted_by_rank": held})
        if accepted:  # a round with nothing correct leaves the model as it was
            model.train()
            trainer = train_sft(model, tokenizer, accepted, cfg.learning_rate,
                                cfg.epochs_per_round, cfg.batch_size, out_dir / "_work", seed + r,
                                compute, what="rft")
            model = trainer.model
        if on_round is not None:
            on_round(r, model, tokenizer,
                     lambda path, t=trainer, m=model: _save(t, tokenizer, Path(path), m))
        if checkpoint_dir is not None and r < cfg.rounds:
            _keep_round(trainer, tokenizer, model, checkpoint_dir, rounds)
    _save(trainer, tokenizer, out_dir, model)
    if checkpoint_dir is not None and is_main_process():  # a finished run leaves none
        _drop_checkpoints(checkpoint_dir)
    return {"items": len(items), "rounds": rounds, "resumed_from": resume,
            "rank_weights": weights_on_every_rank(model)}


ROUNDS = "rft_rounds.json"


def _keep_round(trainer, tokenizer, model, checkpoint_dir: Path, rounds: list) -> None:
    """After a round: its model and the rounds so far as checkpoint-<round>, the only one kept."""
    path = checkpoint_dir / f"checkpoint-{len(rounds)}"
    _save(trainer, tokenizer, path, model)  # every rank: a sharded model is gathered
    if is_main_process():
        (path / ROUNDS).write_text(json.dumps(rounds))
        _drop_checkpoints(checkpoint_dir, keep=path)


def _drop_checkpoints(checkpoint_dir: Path, keep: Path | None = None) -> None:
    import shutil

    for old in checkpoint_dir.glob("checkpoint-*"):
        if old != keep:
            shutil.rmtree(old)


def _digest(obj) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()[:16]


def _accepted_this_round(model, tokenizer, items: Sequence[QAItem], judge: Judge,
                         rollout: RolloutConfig, cfg: RFTConfig, seed: int,
                         max_batch_tokens: int) -> list[tuple[QAItem, str]] | None:
    """One round's accepted samples on the main process (None on the others): every rank
    samples its share, the main process judges the gathered completions."""
    from recall.evaluation import eval_mode, grading_alone, policy_completions
    from recall.sampling import judged_records

    settings = rollout_settings(rollout, cfg.samples_per_item, seed)
    with eval_mode(model):
        raw, _ = policy_completions(model, tokenizer, items, settings, max_batch_tokens)
    if raw is None:
        return None
    with grading_alone(judge):
        records, unjudged = judged_records(judge, items, raw, settings, "rft")
    if unjudged:
        raise RuntimeError(f"RFT: the judge gave no verdict on {unjudged} samples")
    return accepted_samples(records, items)


def _save(trainer, tokenizer, out_dir: Path, model=None) -> None:
    """The trained model and tokenizer to `out_dir`. The trainer saves on every rank (it
    gathers sharded weights); files are written and deleted by the main process only.
    No trainer (RFT with nothing accepted): `model` as it is."""
    import shutil

    if trainer is not None:
        trainer.save_model(str(out_dir))
    if is_main_process():
        if trainer is None:
            save_model(model, tokenizer, out_dir)
        else:
            save_tokenizer(tokenizer, out_dir)
        shutil.rmtree(out_dir / "_work", ignore_errors=True)

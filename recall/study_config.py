"""Typed, frozen params sections of the comparative study: one per training method, and
the study, attribution and transfer sections that say how the methods are run and compared.

`recall.config` assembles them into `Params`; like every section they have no defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recall.errors import ConfigError

# The trained methods, each a train@ stage and a params section of its own.
METHODS = ("grpo", "rloo", "sft", "sft_known", "dpo", "rft")
RL_METHODS = ("grpo", "rloo")


@dataclass(frozen=True)
class RLOOConfig:
    """On-policy RL with a judge reward (GRPO, RLOO). Batch units are prompts, not completions."""

    learning_rate: float  # paper 1e-6 (7B model); the 1M toy model needs more
    prompts_per_step: int  # paper 128 prompts per optimizer step (global)
    group_size: int  # paper 5 completions per prompt
    epochs: int  # paper 8 passes over the RL-train prompts
    beta: float  # paper 0.001 (KL to the reference)
    epsilon: float  # paper 0.2 (clip ratio)
    micro_batch_prompts: int  # prompts per forward pass; gradient accumulation fills the step
    save_steps: int  # checkpoint interval in optimizer steps, for resuming
    reward: Literal["judge", "exact_match"]  # judge: the `judge` section's backend (paper)


@dataclass(frozen=True)
class GRPOConfig(RLOOConfig):
    """GRPO: RLOO's knobs plus how the loss aggregates tokens."""

    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"]  # dapo: token-mean, as verl


@dataclass(frozen=True)
class SFTConfig:
    """Supervised fine-tuning on gold answers (TRL SFTTrainer), the off-policy baseline."""

    learning_rate: float
    epochs: int
    batch_size: int  # prompts per optimizer step
    # Train only on RL-train items the base model answered right at least this many times of
    # sampling.n_samples: 0 keeps every item (SFT); 1 keeps the sampled facts.
    min_accessibility: int
    # accessibility: the rule above; stored: the facts the toy world stored (exposure >= 1),
    # whatever the base model sampled; the control's ground truth (toy only)
    known_by: Literal["accessibility", "stored"]
    save_steps: int  # checkpoint interval in optimizer steps (weights + optimizer), for resuming


@dataclass(frozen=True)
class DPOConfig:
    """DPO on static pairs from the base model's own samples (rule: recall.baselines.dpo_pairs)."""

    learning_rate: float
    epochs: int
    batch_size: int  # pairs per optimizer step
    beta: float  # DPO temperature
    save_steps: int  # checkpoint interval in optimizer steps, for resuming


@dataclass(frozen=True)
class RFTConfig:
    """Online rejection-sampling fine-tuning: sample, judge, SFT on the correct ones, repeat."""

    rounds: int
    samples_per_item: int  # rollout settings, from the latest model
    learning_rate: float
    epochs_per_round: int
    batch_size: int


@dataclass(frozen=True)
class StudyConfig:
    """What every trained method is run and measured with."""

    seeds: tuple[int, ...]  # post-training seeds, all on the one pretrained base
    sample_seeds: tuple[int, ...]  # of those, the ones whose models get n samples (pass@k)
    eval_points: int  # greedy train/test evaluations over normalised training progress
    majority_k: int  # majority vote over the first k base samples (paper 32)
    # val: every method's checkpoint is its best greedy val accuracy among the eval points
    # (the last step included; every rank saves it together), never chosen on test; last:
    # the final step.
    select_on: Literal["val", "last"]
    # The methods whose sample_seeds models get pass_k_samples test samples (pass@k after
    # training); the others are evaluated greedily only.
    sample_methods: tuple[str, ...]

    def __post_init__(self):
        if not self.sample_seeds or not set(self.sample_seeds) <= set(self.seeds):
            raise ConfigError(f"study.sample_seeds {list(self.sample_seeds)} must be a non-empty "
                              f"subset of study.seeds {list(self.seeds)}")
        if "grpo" not in self.sample_methods or not set(self.sample_methods) <= set(METHODS):
            raise ConfigError(f"study.sample_methods {list(self.sample_methods)} must include "
                              f"grpo (pass@k before and after RL) and name only {list(METHODS)}")


@dataclass(frozen=True)
class BasesConfig:
    """More pretrained bases on the same world (toy): each is pretrained with its own seed,
    evaluated greedily, and post-trained with `methods` (study.seeds' first seed), so the
    headline rows get an interval over bases and not only over post-training seeds."""

    seeds: tuple[int, ...]  # pretraining seeds besides experiment.seed; () for none (paper)
    methods: tuple[str, ...]

    def __post_init__(self):
        if not set(self.methods) <= {"grpo", "rloo", "sft"}:
            raise ConfigError(f"bases.methods {list(self.methods)}: only grpo, rloo and sft "
                              "train without the base model's samples")


@dataclass(frozen=True)
class CoTConfig:
    """Chain-of-thought prompting with greedy decoding on the sampled model (stage sample):
    the paper's second test-time baseline. The toy profile leaves it off: the toy model never
    saw reasoning text, and the report says so rather than show a number."""

    run: bool
    max_tokens: int  # room for the reasoning and the final "answer :" line

    def __post_init__(self):
        if self.max_tokens < 1:
            raise ConfigError(f"cot.max_tokens must be at least 1, got {self.max_tokens}")


@dataclass(frozen=True)
class AttributionConfig:
    """GRPO on RL-train partitions by pre-RL accessibility (correct of sampling.n_samples)."""

    partitions: dict[str, tuple[int, int]]  # name -> inclusive [low, high] correct count
    size: int  # items per partition; 0: the smallest partition's size (matched)
    prompts_per_step: int  # smaller than the full run's: a partition is a fraction of it
    seeds: tuple[int, ...]
    # Also the world's own split (toy only): stored-but-inaccessible vs not-stored RL-train
    # facts, at their own matched size (recall.ground_truth.stored_split)
    ground_truth: bool
    # Also by the base's p(gold) labels (toy only, latent.run): tail (stored, rarely or never
    # sampled) vs absent, at their own matched size (recall.latent.latent_groups); finding 5
    # is then judged on tail.
    latent: bool


@dataclass(frozen=True)
class TransferConfig:
    """Train GRPO on one "dataset", test on another (toy: relation families)."""

    by: Literal["relation", "dataset"]  # item.fact.relation (toy) or item.dataset (real data)
    source: tuple[str, ...]
    target: tuple[str, ...]
    seeds: tuple[int, ...]

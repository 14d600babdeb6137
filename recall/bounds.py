"""What a params value may be: its type where dacite is too lenient (`check_value`), and the
valid range of every numeric knob (`out_of_bounds`), both checked when params load.

A value out of range rarely crashes: `dedup.min_overlap: 7` or `dedup.top_k: -5` quietly
switches dedup off. So every int and float field of `recall.config.Params` has an entry
here, keyed by its dataclass and field (sections that share a class share its ranges), and
`tests/test_bounds.py` fails on a numeric field without one. `None` is an open end; a tuple
field has each element checked.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Literal

from recall.errors import ConfigError

INF = None
POSITIVE = (1, INF)
NATURAL = (0, INF)
SHARE = (0.0, 1.0)
RATE = (1e-12, 1.0)  # a learning rate: above 0, and above 1 is a typo for sure

BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "ExperimentConfig.seed": NATURAL,
    "ComputeConfig.num_processes": POSITIVE, "ComputeConfig.num_machines": POSITIVE,
    "ComputeConfig.tensor_parallel_size": POSITIVE, "ComputeConfig.data_parallel_size": POSITIVE,
    "ComputeConfig.gpu_memory_utilization": (0.05, 1.0), "ComputeConfig.max_model_len": POSITIVE,
    "ComputeConfig.gpu_memory_gib": (1e-3, INF),
    "EngineShare.gpu_memory_utilization": (0.05, 1.0), "EngineShare.tensor_parallel_size": POSITIVE,
    "WorldConfig.n_instruction": POSITIVE, "WorldConfig.n_rl_train": POSITIVE,
    "WorldConfig.n_val": POSITIVE, "WorldConfig.n_test": POSITIVE,
    "WorldConfig.unknown_fraction": SHARE, "WorldConfig.values_per_relation": (2, INF),
    "WorldConfig.value_words": POSITIVE,
    "WorldConfig.answer_pool": (0, INF), "WorldConfig.first_name_pool": POSITIVE,
    "WorldConfig.last_name_pool": POSITIVE, "WorldConfig.exposure_min": POSITIVE,
    "WorldConfig.exposure_max": POSITIVE, "WorldConfig.planted_leaks": NATURAL,
    "WorldConfig.planted_distractors": NATURAL,
    "DataConfig.train_size": POSITIVE, "DataConfig.val_size": NATURAL,
    "DataConfig.split_fractions": SHARE,
    "DedupConfig.top_k": POSITIVE, "DedupConfig.ngram_range": POSITIVE,
    "DedupConfig.max_df": (1e-6, 1.0), "DedupConfig.min_overlap": (1e-6, 1.0),
    "DedupConfig.strong_overlap": (1e-6, 1.0),
    "ValidateConfig.near_duplicate_similarity": (1e-6, 1.0),
    "PretrainConfig.n_layer": POSITIVE, "PretrainConfig.n_embd": POSITIVE,
    "PretrainConfig.n_head": POSITIVE, "PretrainConfig.block_size": (8, INF),
    "PretrainConfig.steps": POSITIVE, "PretrainConfig.batch_size": POSITIVE,
    "PretrainConfig.learning_rate": RATE, "PretrainConfig.warmup_steps": NATURAL,
    "PretrainConfig.qa_repeats": POSITIVE,
    "RolloutConfig.temperature": (0.0, 10.0), "RolloutConfig.top_p": (1e-6, 1.0),
    "RolloutConfig.top_k": (-1, INF), "RolloutConfig.max_tokens": POSITIVE,
    "SamplingConfig.n_samples": POSITIVE,
    "SamplingConfig.pass_k_samples": POSITIVE, "SamplingConfig.max_batch_tokens": POSITIVE,
    "RLOOConfig.learning_rate": RATE, "RLOOConfig.prompts_per_step": POSITIVE,
    "RLOOConfig.group_size": (2, INF),  # a group of one has no baseline: zero advantage
    "RLOOConfig.epochs": POSITIVE, "RLOOConfig.beta": (0.0, INF), "RLOOConfig.epsilon": (0.0, 1.0),
    "RLOOConfig.micro_batch_prompts": POSITIVE, "RLOOConfig.save_steps": POSITIVE,
    "SFTConfig.learning_rate": RATE, "SFTConfig.epochs": POSITIVE, "SFTConfig.batch_size": POSITIVE,
    "SFTConfig.min_accessibility": NATURAL, "SFTConfig.save_steps": POSITIVE,
    "DPOConfig.save_steps": POSITIVE,
    "DPOConfig.learning_rate": RATE, "DPOConfig.epochs": POSITIVE, "DPOConfig.batch_size": POSITIVE,
    "DPOConfig.beta": (1e-6, INF),
    "RFTConfig.rounds": POSITIVE, "RFTConfig.samples_per_item": POSITIVE,
    "RFTConfig.learning_rate": RATE, "RFTConfig.epochs_per_round": POSITIVE,
    "RFTConfig.batch_size": POSITIVE,
    "StudyConfig.seeds": NATURAL, "StudyConfig.sample_seeds": NATURAL,
    "BasesConfig.seeds": NATURAL,
    "StudyConfig.eval_points": POSITIVE, "StudyConfig.majority_k": POSITIVE,
    "CoTConfig.max_tokens": POSITIVE,
    "AttributionConfig.partitions": NATURAL, "AttributionConfig.size": NATURAL,  # 0: matched
    "AttributionConfig.prompts_per_step": POSITIVE, "AttributionConfig.seeds": NATURAL,
    "TransferConfig.seeds": NATURAL,
    "JudgeConfig.max_concurrency": POSITIVE, "JudgeConfig.batch_prompts": POSITIVE,
    "JudgeConfig.timeout_s": (0.1, INF), "JudgeConfig.retries": NATURAL,
    "JudgeConfig.backoff_s": (0.0, INF), "JudgeConfig.max_failure_rate": SHARE,
    "JudgeModelConfig.n_layer": POSITIVE, "JudgeModelConfig.n_embd": POSITIVE,
    "JudgeModelConfig.n_head": POSITIVE, "JudgeModelConfig.block_size": (8, INF),
    "JudgeModelConfig.steps": POSITIVE, "JudgeModelConfig.batch_size": POSITIVE,
    "JudgeModelConfig.learning_rate": RATE, "JudgeModelConfig.warmup_steps": NATURAL,
    "JudgeModelConfig.negatives": POSITIVE, "JudgeModelConfig.draws": POSITIVE,
    "LatentConfig.batch_size": POSITIVE, "LatentConfig.absent_quantile": SHARE,
    "LatentConfig.min_expected_events": (0.0, INF),
    "AnalyzeConfig.pass_k": POSITIVE, "AnalyzeConfig.bin_edges": NATURAL,
    "SweepConfig.n_trials": POSITIVE, "SweepConfig.sampler_seed": NATURAL,
    "SweepConfig.eval_every_steps": POSITIVE, "SweepConfig.pruner_warmup_steps": NATURAL,
    "SweepConfig.heartbeat_interval_s": POSITIVE, "SweepConfig.grace_period_s": POSITIVE,
    "SweepConfig.max_retry": NATURAL,
    "ClusterConfig.judge_tensor_parallel": POSITIVE,
    "ClusterConfig.judge_replicas": POSITIVE, "ClusterConfig.nodes": POSITIVE,
    "ClusterConfig.gpus_per_node": POSITIVE, "ClusterConfig.job_timeout_s": POSITIVE,
}


def check_value(hint, value, key: str, source: str) -> None:
    """What dacite reports badly: a choice outside a Literal (named with the allowed values),
    a bool where a number is meant (YAML `true` is an int to Python), a scalar for a list."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal and value not in args:
        raise _error(f"{source}: key '{key}' must be one of {list(args)}, got {value!r}")
    if hint in (int, float) and isinstance(value, bool):
        expected = "an integer" if hint is int else "a number"
        raise _error(f"{source}: key '{key}' expects {expected}, got the boolean "
                          f"{str(value).lower()}")
    if origin is tuple and not isinstance(value, list):
        raise _error(f"{source}: key '{key}' expects a list (YAML [a, b]), got "
                          f"{type(value).__name__} {value!r}")
    if origin is tuple and args and args[0] in (int, float):
        for i, element in enumerate(value):
            check_value(args[0], element, f"{key}[{i}]", source)


def _error(message: str) -> Exception:
    return ConfigError(message)


def bound_key(cls, name: str) -> str:
    """'Class.field' for the class that declares the field (GRPOConfig's group_size is
    RLOOConfig's), so a subclass shares its base's ranges."""
    owner = next(c for c in reversed(cls.__mro__) if name in getattr(c, "__annotations__", {}))
    return f"{owner.__name__}.{name}"


def _range_text(low, high) -> str:
    return {(True, True): "any value", (False, True): f">= {low}",
            (True, False): f"<= {high}"}.get((low is None, high is None), f"in [{low}, {high}]")


def _numbers(value):
    """The numbers inside a field value: itself, a tuple's elements, a dict's values."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, (tuple, list)):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def out_of_bounds(config, prefix: str = "") -> list[str]:
    """One message per numeric field of `config` (recursively) outside its range."""
    problems = []
    for f in dataclasses.fields(config):
        value, key = getattr(config, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            problems += out_of_bounds(value, f"{key}.")
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, element in enumerate(value):
                problems += out_of_bounds(element, f"{key}[{i}].")
        elif bound_key(type(config), f.name) in BOUNDS:
            low, high = BOUNDS[bound_key(type(config), f.name)]
            for n in _numbers(value):
                if (low is not None and n < low) or (high is not None and n > high) or (
                        isinstance(n, float) and math.isnan(n)):
                    problems.append(f"key '{key}' must be {_range_text(low, high)}, got {value!r}")
                    break
    return problems

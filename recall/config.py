"""Typed, frozen configuration: one dataclass per params.yaml section.

params.yaml is the single source of values: the dataclasses have no defaults, so a missing
key is an error just like an unknown one. Paper values are noted in params.yaml.
`load_params("params.yaml")` is the only way stages read knobs. Unknown keys and wrong types
raise `ConfigError` naming the dotted key, so a typo in a sweep override fails before any
compute is spent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dacite
import yaml

from recall.bounds import check_value, out_of_bounds
from recall.compute import ComputeConfig
from recall.errors import ConfigError
from recall.platform_config import ClusterConfig, SweepConfig, TrackingConfig
from recall.staging import ModelsConfig
from recall.study_config import (
    AttributionConfig,
    BasesConfig,
    CoTConfig,
    DPOConfig,
    GRPOConfig,
    RFTConfig,
    RLOOConfig,
    SFTConfig,
    StudyConfig,
    TransferConfig,
)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    profile: Literal["toy", "paper"]
    seed: int


@dataclass(frozen=True)
class WorldConfig:
    """The synthetic fact world (toy profile)."""

    n_instruction: int  # people whose QA is in pretraining: teaches the answer format
    n_rl_train: int
    n_val: int
    n_test: int
    unknown_fraction: float  # RL-train people with no biography: facts the model cannot know
    relations: tuple[str, ...]
    values_per_relation: int
    value_words: int  # words per value: >1 gives multi-token answers
    # >0: each person's value is an ordered draw of value_words words from a pool this big
    # per relation (no last-word alias); 0: a fixed list of values_per_relation values.
    answer_pool: int
    first_name_pool: int  # shared name tokens create interference between people
    last_name_pool: int
    exposure_min: int  # biography copies per person, log-uniform
    exposure_max: int
    # Dedup's ground truth: test questions that paraphrase an RL-train fact (leaks), and test
    # people given an RL-train person's answer while sharing one of their names (not leaks).
    planted_leaks: int
    planted_distractors: int

    def __post_init__(self):
        if self.value_words < 1:
            raise ConfigError(f"world.value_words must be >= 1, got {self.value_words}")
        if self.answer_pool and self.answer_pool < self.value_words:
            raise ConfigError(f"world.answer_pool {self.answer_pool} cannot fill "
                              f"world.value_words {self.value_words} distinct words")


@dataclass(frozen=True)
class SourceConfig:
    """One real QA dataset file (or Hub split) and what the split protocol does with it."""

    name: str  # unique; prefixes every item id
    format: Literal["nq_open", "triviaqa", "popqa", "simpleqa"]
    role: Literal["train", "test", "split"]  # train: subsample + val; split: random fractions
    path: str = ""  # a local file, used whenever it exists
    hub_id: str = ""  # else the Hugging Face Hub (online only)
    hub_config: str = ""
    hub_split: str = ""


@dataclass(frozen=True)
class DataConfig:
    """Where QA items come from: the toy world's own splits, or real datasets."""

    source: Literal["world", "datasets"]
    select: tuple[str, ...]  # names of `datasets` entries used when source is datasets
    train_size: int  # per train-role source (paper 10,000)
    val_size: int  # carved from each train-role source before the train subsample
    split_fractions: tuple[float, ...]  # train, val, test for split-role sources
    datasets: tuple[SourceConfig, ...]


@dataclass(frozen=True)
class DedupConfig:
    """Fact-level train/test dedup: candidates by retrieval, then a verifier's verdict."""

    targets: tuple[str, ...]  # splits cleaned of leaks (val, test)
    references: tuple[str, ...]  # splits the model trains on (instruct, train)
    top_k: int  # retrieval candidates per target item = the most verifier calls per item
    embedding_model: str  # sentence-transformers model directory; empty: TF-IDF char n-grams
    ngram_range: tuple[int, ...]  # TF-IDF character n-gram sizes (low, high)
    use_fact_keys: bool  # a dataset's own fact metadata (PopQA) counts; never the toy's truth
    # llm: the judge section's server, JSON verdicts; none: nothing removed (an ablation:
    # `validate` still guards the splits)
    verifier: Literal["heuristic", "llm", "none"]
    max_df: float  # heuristic: words in more questions than this share are not distinctive
    # heuristic: the share of one side's subject-word weight the other must hold, with the
    # rarest word among them, or strong_overlap without it (recall.dedup.HeuristicVerifier)
    min_overlap: float
    strong_overlap: float


@dataclass(frozen=True)
class ValidateConfig:
    """The `validate` stage's own leakage check, independent of dedup's retrieval and verifier."""

    # A target and a training question sharing a normalised answer are near duplicates when
    # the cosine of their word-boundary character 3-5-gram TF-IDF vectors reaches this.
    near_duplicate_similarity: float


@dataclass(frozen=True)
class PretrainConfig:
    """The tiny GPT-2 trained from scratch on biographies plus instruction QA."""

    n_layer: int
    n_embd: int
    n_head: int
    block_size: int
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    qa_repeats: int  # copies of each instruction QA line, so the format is learned early


@dataclass(frozen=True)
class RolloutConfig:
    """Sampling settings shared by GRPO rollouts and the analyses (the paper's protocol)."""

    temperature: float  # paper 1.0
    top_p: float  # paper 1.0
    top_k: int  # paper -1 (disabled)
    max_tokens: int  # answers are short; no chain of thought (an instruct model's: ~32)
    # GRPO/RLOO rollouts: none (the policy's own generate), colocate (vLLM on the trainer's
    # GPUs, TRL's colocate mode) or server (TRL's `trl vllm-serve` at vllm_server_url).
    # ("none", not "off": YAML 1.1 reads an unquoted off as false, and `dvc exp run -S`
    # rewrites params.yaml without the quotes.)
    vllm: Literal["none", "colocate", "server"]
    vllm_server_url: str


@dataclass(frozen=True)
class SamplingConfig:
    engine: Literal["vllm", "transformers"]
    n_samples: int  # paper: accessibility = correct among 128 samples
    # Test-split samples per item for pass@k (paper: k up to 256); accessibility keeps the
    # first n_samples of them. Other splits draw n_samples.
    pass_k_samples: int
    greedy_splits: tuple[str, ...]
    sample_splits: tuple[str, ...]
    max_batch_tokens: int  # sequences x (prompt + max_tokens) per generate call (transformers backend, in-training evaluation): bounds memory

    def __post_init__(self):
        if self.pass_k_samples < self.n_samples:
            raise ConfigError(f"sampling.pass_k_samples ({self.pass_k_samples}) is below "
                              f"sampling.n_samples ({self.n_samples}): accessibility counts "
                              "the first n_samples of the test split's samples")

    def samples_for(self, split: str) -> int:
        """Samples drawn per item of `split`."""
        return self.pass_k_samples if split == "test" else self.n_samples


@dataclass(frozen=True)
class JudgeConfig:
    """Who grades answers, for the reward, the evaluation and the analyses alike."""

    backend: Literal["rule", "llm"]
    base_url: str  # OpenAI-compatible server; empty: the stage serves `model` with vLLM itself
    model: str  # model directory (served) or the server's model name
    prompt: Literal["toy", "binary", "simpleqa"]
    # A directory holding the judge model's tokenizer: with a chat template there, grading
    # prompts go through it (an instruct judge); "" or no template: the raw prompt (toy).
    tokenizer: str
    max_concurrency: int  # in-flight requests, global: split across training ranks
    batch_prompts: int  # prompts per HTTP request (a list-prompt completions call)
    timeout_s: float  # per request
    retries: int  # after the first try, with jittered exponential backoff
    backoff_s: float
    fast_path: bool  # an exact alias match is correct without asking the LLM
    # A candidate that lacks a word every gold alias shares is wrong without asking the LLM.
    # Toy only: its answers are nonce names, so half a name is another entity; real answers
    # have synonyms ("JFK"), and the paper's judge decides those.
    require_core_words: bool
    cache: str  # verdict cache: a SQLite file, or $RECALL_VERDICT_CACHE (Postgres); "": none
    max_failure_rate: float  # GRPO stops when a larger share of a batch has no verdict


@dataclass(frozen=True)
class JudgeModelConfig:
    """The toy judge: a tiny GPT-2 trained on labelled (question, gold, candidate) pairs."""

    n_layer: int
    n_embd: int
    n_head: int
    block_size: int  # prompt + verdict tokens; longer prompts keep their end
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    negatives: int  # wrong same-relation answers per item, beside one near miss
    # Independent draws of every item's wrong answers (aliases repeat in each): more gold lists
    # seen against other values, the judge's hardest case. 1: one fixed draw.
    draws: int

    def __post_init__(self):
        if self.draws < 1:
            raise ConfigError(f"judge_model.draws must be at least 1, got {self.draws}")


@dataclass(frozen=True)
class LatentConfig:
    """Teacher-forced p(gold) (recall.latent), beside the paper's sampled accessibility."""
    run: bool  # p(gold) of every item under the base and each trained model
    batch_size: int  # aliases per forward pass
    absent_quantile: float  # absent: p(gold) at or below this quantile over never-shown facts
    min_expected_events: float  # fewer expected correct rollouts: a finding is underpowered


@dataclass(frozen=True)
class AnalyzeConfig:
    pass_k: tuple[int, ...]
    # Upper edges of the paper's accessibility bins: 0, 1, 2, 3-4, 5-8, 9-16, 17-32, 33-64, 65-128.
    bin_edges: tuple[int, ...]


@dataclass(frozen=True)
class Params:
    experiment: ExperimentConfig
    compute: ComputeConfig
    models: ModelsConfig
    world: WorldConfig
    data: DataConfig
    dedup: DedupConfig
    validate: ValidateConfig
    pretrain: PretrainConfig
    rollout: RolloutConfig
    sampling: SamplingConfig
    grpo: GRPOConfig
    rloo: RLOOConfig
    sft: SFTConfig
    sft_known: SFTConfig
    dpo: DPOConfig
    rft: RFTConfig
    study: StudyConfig
    bases: BasesConfig
    cot: CoTConfig
    attribution: AttributionConfig
    transfer: TransferConfig
    judge: JudgeConfig
    judge_model: JudgeModelConfig
    latent: LatentConfig
    analyze: AnalyzeConfig
    tracking: TrackingConfig
    sweep: SweepConfig
    cluster: ClusterConfig


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _to_float(value):
    # PyYAML reads `1e-6` (no dot) as a string, and an int where a float is meant is harmless.
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _FLOAT.match(value):
        return float(value)
    return value


def _to_tuple(value):
    # YAML lists become tuples (frozen); `relations: birth_city` stays an error, not chars.
    return tuple(value) if isinstance(value, list) else value


_DACITE = dacite.Config(strict=True, check_types=True, type_hooks={
    float: _to_float, tuple[str, ...]: _to_tuple, tuple[int, ...]: _to_tuple,
    tuple[int | float | str, ...]: _to_tuple, tuple[float, ...]: _to_tuple,
    tuple[SourceConfig, ...]: _to_tuple, tuple[int, int]: _to_tuple})


def params_from_dict(data: dict, source: str = "params") -> Params:
    """Build `Params` from a nested dict; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    _check_keys(Params, data, source)
    try:
        params = dacite.from_dict(Params, data, config=_DACITE)
    except dacite.WrongTypeError as err:
        raise ConfigError(
            f"{source}: key '{err.field_path}' expects {_type_name(err.field_type)}, "
            f"got {err.value!r} ({type(err.value).__name__})"
        ) from err
    except dacite.DaciteError as err:
        raise ConfigError(f"{source}: {err}") from err
    problems = out_of_bounds(params)
    if params.attribution.latent and not params.latent.run:
        problems.append("attribution.latent needs the base's p(gold): latent.run is false")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return params


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file."""
    path = Path(path)
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    return params_from_dict(data, source=str(path))


def with_overrides(params: Params, overrides: dict[str, object]) -> Params:
    """`params` with dotted keys replaced (e.g. {'grpo.beta': 0.01}), validated like a file."""
    data = as_dict(params)
    for dotted, value in overrides.items():
        *path, leaf = dotted.split(".")
        node = data
        for key in path:
            if not isinstance(node.get(key), dict):
                raise ConfigError(f"override: unknown key '{dotted}'")
            node = node[key]
        if leaf not in node:
            raise ConfigError(f"override: unknown key '{dotted}'")
        node[leaf] = value
    return params_from_dict(data, source="override")


def _check_keys(cls, data: dict, source: str, prefix: str = "") -> None:
    # dacite names only the leaf of an unknown key; a dotted name is what a user can grep for.
    known = typing.get_type_hints(cls)
    for key, value in data.items():
        if key not in known:
            raise ConfigError(
                f"{source}: unknown key '{prefix}{key}'; expected one of {sorted(known)}"
            )
        sub = known[key]
        check_value(sub, value, f"{prefix}{key}", source)
        if dataclasses.is_dataclass(sub):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: key '{prefix}{key}' expects a mapping, got {value!r}")
            _check_keys(sub, value, source, prefix=f"{prefix}{key}.")
        entry = typing.get_args(sub)[0] if typing.get_origin(sub) is tuple else None
        if dataclasses.is_dataclass(entry) and isinstance(value, list):
            for i, element in enumerate(value):  # e.g. data.datasets[1].path
                if not isinstance(element, dict):
                    raise ConfigError(f"{source}: key '{prefix}{key}[{i}]' expects a mapping, "
                                      f"got {element!r}")
                _check_keys(entry, element, source, prefix=f"{prefix}{key}[{i}].")


def as_dict(params) -> dict:
    """Plain nested dict of a config (tuples become lists), for logging and hashing."""
    return json.loads(json.dumps(dataclasses.asdict(params)))


def flat_dict(params, prefix: str = "") -> dict[str, object]:
    """Dotted-key view, e.g. {'grpo.learning_rate': 3e-05}, as MLflow params."""
    out: dict[str, object] = {}
    for key, value in (as_dict(params) if dataclasses.is_dataclass(params) else params).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_dict(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def fingerprint(*configs) -> str:
    """Stable short hash of configs, used to refuse resuming a checkpoint of other settings."""
    blob = json.dumps([as_dict(c) for c in configs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]

"""What a model costs in GPU memory, disk and hours, from its `config.json` (`recall plan`).

The parameter count is the architecture's own: transformers builds the model from the
config on the `meta` device (no memory, no weights) and counts its parameters, so it is
right for any architecture transformers knows (Qwen2.5-7B-Instruct: 7.62B, not the 7B of
its name). The config is the staged model's (`models/<role>/config.json`) when there is
one, else the copy committed for the pinned repository (`configs/models/<org>--<name>/`).

Training memory per GPU, for P parameters sharded over N processes (FSDP2 full shard):
    policy: fp32 master weights 4P + fp32 gradients 4P + Adam's two fp32 moments 8P, / N
    reference model (GRPO/RLOO with beta > 0, DPO): built by TRL at the policy's load
        dtype, fp32 here (`compute.load_model`): 4P / N
    activations of one micro batch of T tokens (bf16, flash/SDPA attention, no T^2 term),
        per token and layer, without checkpointing: 2 bytes x (6h + 2kv + 4I) [attention:
        norm and q/k/v/o inputs; SwiGLU: norm and gate/up inputs, gate, up, act, product];
        with checkpointing: each layer's input (2h bytes) plus one layer recomputed;
    logits: T x vocab x 4 bytes (the loss upcasts them to fp32);
    a colocated vLLM rollout engine: its share of the GPU (`compute.rollout_engine`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

GIB = 1024 ** 3
# Tokens of a direct chat prompt (template header + question): an assumption the plan prints.
PROMPT_TOKENS = 96


@dataclass(frozen=True)
class Shape:
    """The figures of an architecture that size its memory."""

    parameters: int
    hidden: int
    layers: int
    intermediate: int
    kv_dim: int  # key/value heads x head dim
    vocab: int
    source: str  # the config.json it came from


def config_path(role: str, src, root: Path = Path(".")) -> Path | None:
    """`models/<role>/config.json` when what is staged there is `src` (a `ModelSource`),
    else the committed copy for `src.repo`; None if neither. A toy model staged in the
    workspace never stands in for the hub model a paper params file names."""
    staged = root / "models" / role
    if (staged / "config.json").exists() and _staged_is(staged, src):
        return staged / "config.json"
    committed = root / "configs/models" / src.repo.replace("/", "--") / "config.json"
    return committed if src.repo and committed.exists() else None


def _staged_is(staged: Path, src) -> bool:
    from recall.staging import SOURCE_FILE

    record = staged / SOURCE_FILE
    if not record.exists():  # built by its own stage (the toy's pretrain / train)
        return src.source in ("pretrain", "train")
    got = json.loads(record.read_text())
    if src.source == "hub":
        return got.get("source") == "hub" and got.get("repo") == src.repo
    return got.get("source") == src.source and got.get("path", "") == str(src.path)


def shape(path: Path) -> Shape:
    """The parameter count and sizes of the architecture in `path` (a config.json)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    raw = json.loads(path.read_text())
    if "model_type" not in raw:
        raise ValueError(f"{path}: no model_type, so transformers cannot build the architecture")
    cfg = AutoConfig.for_model(**raw)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return Shape(parameters=sum(p.numel() for p in model.parameters()), hidden=cfg.hidden_size,
                 layers=cfg.num_hidden_layers,
                 intermediate=getattr(cfg, "intermediate_size", 4 * cfg.hidden_size),
                 kv_dim=getattr(cfg, "num_key_value_heads", heads) * head_dim,
                 vocab=cfg.vocab_size, source=str(path))


def activation_bytes(s: Shape, tokens: int, checkpointing: bool) -> int:
    """Activations kept for the backward pass of one micro batch of `tokens` tokens."""
    layer = 2 * (6 * s.hidden + 2 * s.kv_dim + 4 * s.intermediate) * tokens
    if checkpointing:
        return 2 * s.hidden * tokens * s.layers + layer
    return layer * s.layers


def training_memory(s: Shape, ranks: int, reference: bool, tokens: int, checkpointing: bool,
                    vllm_gib: float = 0.0) -> dict[str, float]:
    """GiB per GPU, part by part (the module docstring); `total` sums them."""
    p = s.parameters / ranks
    parts = {"weights (fp32)": 4 * p / GIB, "gradients (fp32)": 4 * p / GIB,
             "Adam moments (fp32)": 8 * p / GIB,
             "reference model (fp32)": 4 * p / GIB if reference else 0.0,
             "activations": activation_bytes(s, tokens, checkpointing) / GIB,
             "logits (fp32)": 4 * tokens * s.vocab / GIB,
             "colocated vLLM share": vllm_gib}
    return {**parts, "total": sum(parts.values())}


def disk_gib(s: Shape) -> dict[str, float]:
    """GiB on disk: a saved model (fp32 safetensors, as trained), and a resumable training
    checkpoint (the model plus Adam's moments; gradients are not saved)."""
    return {"saved model (fp32)": 4 * s.parameters / GIB,
            "checkpoint (model + optimizer)": 12 * s.parameters / GIB}


@dataclass(frozen=True)
class Rates:
    """Throughputs the plan's hours assume: stated, not measured here (no GPU). Defaults for
    a 7B policy on H100s and the 72B judge on 4 H100s (tensor parallel) with vLLM: judge
    verdicts are one token after a ~150-token prompt (prefill-bound); samples are short
    answers (<= 32 tokens); training counts the policy's forward and backward and the
    reference's forward per token."""

    judge_calls_per_s: float = 50.0  # per judge replica
    samples_per_s_per_gpu: float = 300.0
    train_tokens_per_s_per_gpu: float = 5000.0

    def __str__(self) -> str:
        return (f"{self.judge_calls_per_s:g} judge calls/s per replica, "
                f"{self.samples_per_s_per_gpu:g} samples/s per GPU, "
                f"{self.train_tokens_per_s_per_gpu:g} training tokens/s per GPU")


def stage_hours(samples: float, judge_calls: float, train_tokens: float, rates: Rates,
                gpus: int, judge_replicas: int) -> float:
    """Hours of one stage: generating on `gpus`, judging on `judge_replicas`, training on
    `gpus`, one after another (the stages overlap generation and judging: an upper bound)."""
    seconds = (samples / (rates.samples_per_s_per_gpu * gpus)
               + judge_calls / (rates.judge_calls_per_s * judge_replicas)
               + train_tokens / (rates.train_tokens_per_s_per_gpu * gpus))
    return seconds / 3600

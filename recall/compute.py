"""Where and in what numerics everything runs: the one place that decides compute.

Every trainer (GRPO, RLOO, SFT, DPO, RFT, the toy pretraining and the toy judge) and every
engine takes its device, precision, gradient checkpointing and attention implementation
from the `compute` params section through this module, so every method gets the same
numerics and none hard-codes a device or dtype.

Precision: weights are always loaded in fp32 (the master copy the optimizer updates);
`bf16` adds bf16 autocast for the compute. A pure-bf16 model at lr 1e-6 would round most
updates away, and a method-dependent choice would make method gaps partly numerics.

Distribution: `world_size()` and `is_main_process()` read the variables that
`accelerate launch` and `torchrun` set, without initialising anything, so a single-process
stage on a laptop and rank 3 of 16 on a GPU node run the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Sequence

from recall.errors import ConfigError

# How long the other ranks wait at a collective while the main process evaluates a model
# (the default 30 minutes can be short for 128 samples per test item of a 7B model).
EVALUATION_WAIT_S = 4 * 3600


@dataclass(frozen=True)
class ComputeConfig:
    device: Literal["auto", "cpu", "cuda"]  # auto: CUDA when present
    precision: Literal["auto", "fp32", "bf16"]  # auto: bf16 compute on CUDA, fp32 on CPU
    gradient_checkpointing: bool  # trade compute for activation memory (7B: on)
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"]
    num_processes: int  # training processes per node; 1 runs in the stage's own process
    num_machines: int  # nodes; >1 reads the rank and master address from the environment
    accelerate_config: str  # FSDP2 / ZeRO-3 accelerate config file; "" for plain DDP or one process
    # The evaluation engine (vLLM), for base and trained models alike:
    tensor_parallel_size: int
    data_parallel_size: int
    gpu_memory_utilization: float  # vLLM's share of each GPU's memory
    max_model_len: int  # prompt + completion tokens vLLM reserves KV cache for

    def __post_init__(self):
        for key in ("num_processes", "num_machines", "tensor_parallel_size", "data_parallel_size",
                    "max_model_len"):
            if getattr(self, key) < 1:
                raise ConfigError(f"compute.{key} must be >= 1, got {getattr(self, key)}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"compute.gpu_memory_utilization must be in (0, 1], "
                              f"got {self.gpu_memory_utilization}")


@dataclass(frozen=True)
class Resolved:
    """`ComputeConfig` with `auto` decided for this machine."""

    device: str  # "cpu" | "cuda"
    bf16: bool  # bf16 autocast over fp32 master weights
    gradient_checkpointing: bool
    attn_implementation: str

    @property
    def vllm_dtype(self) -> str:
        return "bfloat16" if self.bf16 else "float32"


def resolve(cfg: ComputeConfig, cuda_available: bool | None = None) -> Resolved:
    """Decide `auto`; asking for CUDA where there is none is an error, not a CPU run."""
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    device = cfg.device if cfg.device != "auto" else ("cuda" if cuda_available else "cpu")
    if device == "cuda" and not cuda_available:
        raise RuntimeError("compute.device is 'cuda', but torch sees no CUDA device")
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device == "cuda")
    return Resolved(device, bf16, cfg.gradient_checkpointing, cfg.attn_implementation)


def world_size() -> int:
    """Training processes in this run (1 outside `accelerate launch` / `torchrun`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Only the global rank 0 writes files, opens MLflow runs, evaluates and deletes."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    import torch.distributed as dist

    if world_size() > 1 and dist.is_available() and dist.is_initialized():
        dist.barrier()


def trainer_kwargs(res: Resolved, seed: int, report_to: Sequence[str] = (),
                   save_strategy: str = "no") -> dict:
    """The transformers/TRL `TrainingArguments` fields every trainer in recall shares: the
    resolved compute, one seed for initialisation and data order, where logs go (none by
    default: stages log to MLflow themselves) and no checkpoints unless asked."""
    return dict(use_cpu=res.device == "cpu", bf16=res.bf16, fp16=False,
                gradient_checkpointing=res.gradient_checkpointing,
                # Between seeds the other ranks wait while the main process evaluates.
                ddp_timeout=EVALUATION_WAIT_S,
                seed=seed, data_seed=seed, report_to=list(report_to), save_strategy=save_strategy)


def load_model(model_dir, res: Resolved):
    """A causal LM for training: fp32 master weights (see the module docstring) and the
    configured attention."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                attn_implementation=res.attn_implementation)


def per_device(total: int, micro: int, what: str, ranks: int | None = None) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) so that one optimizer step holds `total`
    examples over `ranks` processes (default `world_size()`), with at most `micro` per
    forward pass.

    >>> per_device(128, 32, "sft.batch_size")
    (32, 4)
    >>> per_device(128, 32, "sft.batch_size", ranks=8)
    (16, 1)
    """
    ranks = ranks or world_size()
    if total % ranks:
        raise ValueError(f"{what} ({total}) must be a multiple of the {ranks} training processes")
    local = total // ranks
    micro = min(micro, local)
    if local % micro:
        raise ValueError(f"{what} per process ({local}) must be a multiple of the micro batch "
                         f"({micro})")
    return micro, local // micro

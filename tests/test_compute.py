"""One place decides compute: auto resolution, and every trainer taking its fields from it."""

import ast
from pathlib import Path

import pytest

from recall.compute import Resolved, per_device, resolve, trainer_kwargs

ROOT = Path(__file__).resolve().parents[1]


def test_auto_is_cuda_bf16_when_present_and_fp32_cpu_otherwise(micro_params):
    cfg = micro_params.compute
    share = cfg.rollout_engine
    assert resolve(cfg, cuda_available=False) == Resolved("cpu", False, False, "sdpa", share)
    assert resolve(cfg, cuda_available=True) == Resolved("cuda", True, False, "sdpa", share)
    import dataclasses

    fp32 = dataclasses.replace(cfg, precision="fp32")
    assert resolve(fp32, cuda_available=True).bf16 is False
    with pytest.raises(RuntimeError, match="compute.device is 'cuda', but torch sees no CUDA"):
        resolve(dataclasses.replace(cfg, device="cuda"), cuda_available=False)


def test_trainer_fields_follow_the_resolution():
    gpu = trainer_kwargs(Resolved("cuda", True, True, "sdpa"), seed=3)
    assert (gpu["use_cpu"], gpu["bf16"], gpu["fp16"], gpu["gradient_checkpointing"]) == \
        (False, True, False, True)
    cpu = trainer_kwargs(Resolved("cpu", False, False, "eager"), seed=3, report_to=("mlflow",),
                         save_strategy="steps")
    assert (cpu["use_cpu"], cpu["bf16"]) == (True, False)
    assert (gpu["seed"], gpu["data_seed"], gpu["report_to"], gpu["save_strategy"]) == (3, 3, [], "no")
    assert (cpu["report_to"], cpu["save_strategy"]) == (["mlflow"], "steps")


def test_no_trainer_or_engine_hard_codes_device_or_precision():
    """Every module that builds trainer arguments takes them from `trainer_kwargs`, and no
    module but compute.py names use_cpu, bf16= or a dtype literal for training."""
    builders = {"TrainingArguments", "GRPOConfig", "RLOOConfig", "SFTConfig", "DPOConfig",
                "TRLGRPOConfig", "TRLRLOOConfig", "TRLSFTConfig", "TRLDPOConfig"}
    checked = []
    for path in sorted((ROOT / "recall").rglob("*.py")):
        if path.name == "compute.py":
            continue
        tree = ast.parse(path.read_text())
        rel = path.relative_to(ROOT / "recall").as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg in ("use_cpu", "bf16", "fp16"):
                pytest.fail(f"{rel}:{node.lineno} sets {node.arg} itself")
            if isinstance(node, ast.Call):
                func = node.func.body if isinstance(node.func, ast.IfExp) else node.func
                name = getattr(func, "id", None) or getattr(func, "attr", "")
                if name in builders or name.endswith("Config") and name.startswith("TRL"):
                    spread = [kw for kw in node.keywords if kw.arg is None]
                    assert spread, f"{rel}:{node.lineno} builds {name} without compute"
                    checked.append(f"{rel}:{name}")
    # the toy pretraining, the toy judge, GRPO/RLOO, SFT and DPO
    assert {c.split(":")[0] for c in checked} >= {"pretraining.py", "judge/training.py",
                                                  "training.py", "baselines.py"}


def test_bf16_resolution_reaches_the_rl_and_sft_arguments(micro_params, tmp_path):
    from recall.baselines import _common_args
    from recall.training import rl_arguments

    bf16_cpu = Resolved("cpu", True, False, "sdpa")  # CPU bf16 autocast exists in torch
    args = rl_arguments(micro_params.grpo, micro_params.rollout, tmp_path, 0, bf16_cpu, ())
    assert args.bf16 is True and args.use_cpu is True and args.mask_truncated_completions
    common = _common_args(1e-4, 1, 8, tmp_path, 0, bf16_cpu, (), "sft.batch_size")
    assert common["bf16"] is True and common["per_device_train_batch_size"] == 8


def test_per_device_refuses_a_batch_the_ranks_cannot_share():
    assert per_device(640, 40, "x", ranks=8) == (40, 2)
    with pytest.raises(ValueError, match=r"sft.batch_size \(10\) must be a multiple of the 4"):
        per_device(10, 4, "sft.batch_size", ranks=4)


@pytest.mark.slow
def test_fsdp2_over_gloo_shards_evaluates_in_step_and_gathers_identical_weights(
        tiny_model, tmp_path):
    """Two CPU processes shard the tiny GPT-2 with FSDP2 (tests/fsdp2_worker.py says why
    not through accelerate): each holds about half the parameters, the split greedy
    evaluation returns every item's answer exactly as one unsharded process does, and the
    gathered weights agree across ranks before and after an optimizer step."""
    import json
    import os
    import pickle
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recall.compute import weights_on_every_rank
    from recall.evaluation import policy_completions
    from recall.sampling import SamplingSettings

    model_dir, world, _ = tiny_model
    items = [it for it in world.items if it.split == "test"][:7]  # 7 over 2 ranks: 4 and 3
    (tmp_path / "items.pkl").write_bytes(pickle.dumps(items))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         str(ROOT / "tests/fsdp2_worker.py"), str(model_dir), str(tmp_path / "items.pkl"),
         str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads((tmp_path / "out.json").read_text())

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    alone, shares = policy_completions(model, tok, items,
                                       SamplingSettings(n=1, temperature=0.0, max_tokens=4), 64)
    assert shares == [7]
    assert out["shares"] == [4, 3] and out["completions"] == alone
    assert out["local_numel"] < 0.6 * out["full_numel"]  # sharded, not replicated
    assert out["before"] == weights_on_every_rank(model) * 2  # the same weights on both ranks
    assert len(set(out["after"])) == 1 and out["after"] != out["before"]
    full = model.state_dict()  # (tied embeddings appear twice, as in the saved model)
    assert (out["state_dict_keys"], out["state_dict_numel"]) == \
        (len(full), sum(t.numel() for t in full.values()))

"""The paper path's trainers and evaluation engine on one GPU with no network, against the
plan: peak GPU memory per phase divided by `recall plan`'s estimate for the same model,
micro batch and sequence length, with training tokens/s and evaluation samples/s.

    bash scripts/gpu_check.sh --prepare wheels/   # with network: the wheel folder (<= 64 MiB)
    bash scripts/gpu_check.sh                     # on the GPU machine (its own torch)
    bash scripts/gpu_check.sh --cpu               # anywhere: every phase, micro model

Phases, each time-boxed and reported separately: GRPO steps (`recall.training.train_rl`:
rollouts by `generate`, the rule judge, bf16 over fp32 master weights, gradient
checkpointing as params-paper.yaml says), the transformers evaluation engine with
token-budget batching, SFT and DPO steps (`recall.baselines`). The model is a
random-initialised Qwen2 with a chat template, built here from a config (no download),
on questions of the toy world (no data files). One process (world size 1): no sharding.
Writes one JSON file (figures, verdicts, versions, device) and exits 1 when a phase fails
or a memory ratio leaves RATIO_BAND.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATIO_BAND = (0.5, 1.5)  # measured peak / plan estimate that passes
SIZES = {"cpu": {"hidden_size": 64, "layers": 2}, "cuda": {"hidden_size": 896, "layers": 24}}
PACKAGES = ("torch", "transformers", "accelerate", "trl", "datasets", "tokenizers")


def check_params(device: str):
    """params-paper.yaml at check scale: one process, no sharding, no vLLM."""
    import yaml

    from recall.config import params_from_dict

    data = yaml.safe_load((ROOT / "params-paper.yaml").read_text())
    data["compute"].update({"device": device, "num_processes": 1, "accelerate_config": ""})
    data["rollout"]["vllm"] = "none"
    data["grpo"].update({"prompts_per_step": 16, "micro_batch_prompts": 8, "epochs": 1})
    for method in ("sft", "dpo"):
        data[method].update({"batch_size": 32, "epochs": 1})
    return params_from_dict(data)


def build(work: Path, device: str):
    """The world's items and a Qwen2 chat model over their words."""
    import yaml

    from recall.config import params_from_dict
    from recall.micro_model import build_chat_model
    from recall.world import generate_world

    toy = params_from_dict(yaml.safe_load((ROOT / "params.yaml").read_text()))
    items = list(generate_world(toy.world, seed=0).items)
    texts = [it.question for it in items] + [a for it in items for a in it.answers]
    model_dir = build_chat_model(work / "model", texts, **SIZES[device])
    return model_dir, [it for it in items if it.split == "train"]


class Meter:
    """Peak GPU memory of one phase (None on CPU) and its wall time."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        import torch

        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        self.seconds = time.perf_counter() - self.start
        self.peak_gib = (torch.cuda.max_memory_allocated() / 2 ** 30
                         if self.device == "cuda" else None)
        return False


def estimate_gib(model_dir: Path, params, reference: bool, tokens: int) -> float:
    from recall.footprint import shape, training_memory

    return training_memory(shape(model_dir / "config.json"), 1, reference, tokens,
                           params.compute.gradient_checkpointing)["total"]


def grpo_phase(model_dir, items, params, res, work, device) -> dict:
    from recall.footprint import PROMPT_TOKENS
    from recall.judge.rules import RuleJudge
    from recall.training import train_rl

    g = params.grpo
    chosen = items[:g.prompts_per_step * 2]  # two optimizer steps
    with Meter(device) as m:
        out = train_rl(model_dir, chosen, RuleJudge(), g, params.rollout, work / "ckpt",
                       work / "grpo", seed=0, compute=res, report_to=())
    seq = PROMPT_TOKENS + params.rollout.max_tokens
    tokens = g.micro_batch_prompts * g.group_size * seq
    return {"steps": out["global_step"], "seconds": m.seconds, "peak_gib": m.peak_gib,
            "estimate_gib": estimate_gib(model_dir, params, g.beta > 0, tokens),
            "tokens_per_s": len(chosen) * g.group_size * seq / m.seconds}


def evaluation_phase(model_dir, items, params, res, device) -> dict:
    from recall.contract import SamplingSettings
    from recall.engines import TransformersEngine
    from recall.prompts import DIRECT

    settings = SamplingSettings(n=8, temperature=1.0, max_tokens=params.rollout.max_tokens)
    with Meter(device) as m:
        engine = TransformersEngine(str(model_dir), params.sampling.max_batch_tokens, res)
        prompts = [DIRECT.render(it.question, engine.tokenizer) for it in items[:256]]
        out = engine.generate(prompts, settings)
    return {"samples": sum(len(c) for c in out), "seconds": m.seconds, "peak_gib": m.peak_gib,
            "samples_per_s": sum(len(c) for c in out) / m.seconds,
            "prompts_per_call": engine.prompts_per_call(prompts, settings)}


def baseline_phase(kind, model_dir, items, params, res, work, device) -> dict:
    from recall.baselines import MICRO_BATCH, run_dpo, run_sft
    from recall.contract import SampleRecord
    from recall.footprint import PROMPT_TOKENS

    chosen = items[:64]
    # judged base samples: one right, one wrong answer per item (DPO's pairs)
    samples = {it.id: SampleRecord(it.id, "train", "base", "direct", 1.0,
                                   (it.answers[0], "unknown"), (1, 0)) for it in chosen}
    cfg = getattr(params, kind)
    run = run_sft if kind == "sft" else run_dpo
    with Meter(device) as m:
        out = run(model_dir, chosen, samples, cfg, work / kind, 0, res)
    per = 2 if kind == "dpo" else 1
    tokens = min(MICRO_BATCH, cfg.batch_size) * per * (PROMPT_TOKENS + params.rollout.max_tokens)
    return {"steps": out["steps"], "seconds": m.seconds, "peak_gib": m.peak_gib,
            "estimate_gib": estimate_gib(model_dir, params, kind == "dpo", tokens)}


def verdict(phase: dict) -> str:
    if "error" in phase:
        return "failed"
    if phase.get("peak_gib") is None or "estimate_gib" not in phase:
        return "ran"  # no GPU memory to compare on CPU; evaluation has no plan figure
    phase["ratio"] = phase["peak_gib"] / phase["estimate_gib"]
    low, high = RATIO_BAND
    return "pass" if low <= phase["ratio"] <= high else "ratio outside band"


def run_phases(device: str, work: Path, budget_s: float) -> dict:
    from recall.compute import resolve

    params = check_params(device)
    res = resolve(params.compute)
    model_dir, items = build(work, device)
    phases = {"grpo": lambda: grpo_phase(model_dir, items, params, res, work, device),
              "evaluation": lambda: evaluation_phase(model_dir, items, params, res, device),
              "sft": lambda: baseline_phase("sft", model_dir, items, params, res, work, device),
              "dpo": lambda: baseline_phase("dpo", model_dir, items, params, res, work, device)}
    start, report = time.perf_counter(), {}
    for name, phase in phases.items():
        if time.perf_counter() - start > budget_s:
            report[name] = {"error": f"not run: the {budget_s:.0f} s budget was spent"}
        else:
            try:
                report[name] = phase()
            except Exception as err:  # a failed phase is reported, the others still run
                report[name] = {"error": f"{type(err).__name__}: {err}"}
        report[name]["verdict"] = verdict(report[name])
        print(f"gpu_check: {name}: {json.dumps(report[name])}", flush=True)
    return report


def environment(device: str) -> dict:
    import importlib.metadata as md

    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    return {"device": device, "gpu": gpu, "python": platform.python_version(),
            "versions": versions, "date": time.strftime("%Y-%m-%d")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="the micro model on the CPU")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    ap.add_argument("--work", type=Path, help="build here (default: a temporary directory)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="phases start only within it")
    args = ap.parse_args()
    import tempfile

    import torch

    device = "cpu" if args.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device; --cpu runs the micro check", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        phases = run_phases(device, args.work or Path(tmp), args.budget_s)
    report = {**environment(device), "ratio_band": RATIO_BAND, "phases": phases}
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    bad = [n for n, p in phases.items() if p["verdict"] not in ("pass", "ran")]
    print(f"gpu_check: {'failed: ' + ', '.join(bad) if bad else 'passed'} ({args.out})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

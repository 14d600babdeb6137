"""`recall plan`: refuse an inconsistent params file, and print the bill before GPU-hours.

    recall plan --params params-paper.yaml

`problems` lists what would stop (or silently change) a run, each naming its key.
`estimate` gives per stage what the run will generate, grade and train: samples, judge
calls (an upper bound: the cache, the exact-match fast path and deduplication of identical
answers only lower it), optimizer steps, and training memory per GPU.

Memory per GPU, for the base model's P parameters sharded over the N training processes
(FSDP2 full shard or ZeRO-3), with fp32 master weights and Adam:
    policy: 4P (weights) + 4P (gradients) + 8P (Adam moments) = 16P bytes / N
    reference model for the KL term (beta > 0): 2P bytes (bf16) / N
    activations are not counted: gradient checkpointing keeps them small at 32-token answers.
A colocated vLLM rollout engine takes its own share of each GPU on top, and the judge and
evaluation engines theirs: `gpu_ledger` adds up what shares a GPU at once, and `problems`
refuses a file that over-commits one, naming the processes.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from recall.compute import per_device
from recall.config import Params
from recall.staging import check_source

GB = 1024 ** 3


def problems(params: Params, root: Path = Path(".")) -> list[str]:
    """Everything inconsistent in `params`, each naming the key; empty when it holds together."""
    out: list[str] = []
    data = params.data
    by_name = {src.name: src for src in data.datasets}
    if data.source == "datasets":
        selected = [by_name[n] for n in data.select if n in by_name]
        out += [f"data.select names {n!r}, which is not in data.datasets"
                for n in data.select if n not in by_name]
        for src in selected:
            if not (src.path and (root / src.path).exists()) and not src.hub_id:
                out.append(f"data.datasets '{src.name}': no file at path {src.path!r} and no "
                           "hub_id to stage it from")
        formats = {src.format for src in selected}
        if params.transfer.by == "dataset":
            for key in ("source", "target"):
                missing = sorted(set(getattr(params.transfer, key)) - formats)
                if missing:
                    out.append(f"transfer.{key} {missing} is not among the selected datasets' "
                               f"formats {sorted(formats)} (data.select)")
        if params.models.base.source == "pretrain":
            out.append("models.base.source is 'pretrain' (the toy GPT-2 of the world's "
                       "vocabulary), but data.source is 'datasets': stage a real model")
    for role in ("base", "judge", "embedder"):
        out += check_source(role, getattr(params.models, role))
    if params.dedup.embedding_model and params.models.embedder.source == "none":
        out.append(f"dedup.embedding_model is {params.dedup.embedding_model!r}, but "
                   "models.embedder.source is 'none': nothing stages it")
    if params.judge.backend == "llm" and not params.judge.base_url \
            and params.models.judge.source == "none":
        out.append("judge.base_url is empty and models.judge.source is 'none': no judge to serve")
    ranks = params.compute.num_processes * params.compute.num_machines
    for method in ("grpo", "rloo"):
        cfg = getattr(params, method)
        try:
            per_device(cfg.prompts_per_step, cfg.micro_batch_prompts, f"{method}.prompts_per_step",
                       ranks)
        except ValueError as err:
            out.append(str(err))
    n = params.sampling.n_samples
    if params.study.majority_k > n:
        out.append(f"study.majority_k ({params.study.majority_k}) exceeds sampling.n_samples ({n}):"
                   " the majority vote has too few samples per item")
    over = [k for k in params.analyze.pass_k if k > params.sampling.pass_k_samples]
    if over:
        out.append(f"analyze.pass_k {over} exceeds sampling.pass_k_samples "
                   f"({params.sampling.pass_k_samples}): pass@k needs at least k samples per item")
    if params.compute.accelerate_config and not (root / params.compute.accelerate_config).exists():
        out.append(f"compute.accelerate_config: no file {params.compute.accelerate_config}")
    rows = estimate(params, model_parameters(params, root), item_counts(params))
    out += ledger_problems(gpu_ledger(params, max(r["gpu_gib"] for r in rows)))
    return out


def model_parameters(params: Params, root: Path = Path(".")) -> float:
    """The base model's parameter count: from a staged config.json when there is one, else
    from the size in its repo name (Qwen2.5-7B-Instruct: 7.6e9 is 7e9 here, a lower bound)."""
    config = root / "models/base/config.json"
    if config.exists():
        c = json.loads(config.read_text())
        if "num_hidden_layers" in c and "hidden_size" in c:
            h, layers = c["hidden_size"], c["num_hidden_layers"]
            ffn = c.get("intermediate_size", 4 * h)
            return layers * (4 * h * h + 3 * h * ffn) + c.get("vocab_size", 0) * h
    found = re.search(r"(\d+(?:\.\d+)?)[bB]\b", params.models.base.repo)
    return float(found.group(1)) * 1e9 if found else 0.0


def item_counts(params: Params) -> dict[str, int]:
    """Items per split as the split protocol will cut them, before dedup (an upper bound)."""
    if params.data.source == "world":
        w = params.world
        per = len(w.relations)
        return {"train": w.n_rl_train * per, "val": w.n_val * per, "test": w.n_test * per}
    counts = {"train": 0, "val": 0, "test": 0}
    by_name = {src.name: src for src in params.data.datasets}
    for src in (by_name[name] for name in params.data.select if name in by_name):
        rows = _rows(src)
        if src.role == "train":
            counts["val"] += min(params.data.val_size, rows)
            counts["train"] += min(params.data.train_size, max(0, rows - params.data.val_size))
        elif src.role == "test":
            counts["test"] += rows
        else:
            for split, share in zip(("train", "val", "test"), params.data.split_fractions):
                counts[split] += int(rows * share)
    return counts


# Rows of the paper's sources where no local file says (published sizes).
KNOWN_ROWS = {"nq_open": {"train": 87925, "test": 3610}, "triviaqa": {"train": 87622, "test": 11313},
              "popqa": {"split": 14267}, "simpleqa": {"split": 4326, "train": 4326}}


def _rows(src) -> int:
    path = Path(src.path)
    if src.path and path.exists():
        with path.open("rb") as fh:
            return max(0, sum(1 for _ in fh) - (1 if src.format in ("popqa", "simpleqa") else 0))
    return KNOWN_ROWS.get(src.format, {}).get(src.role, 0)


def estimate(params: Params, n_params: float, counts: dict[str, int]) -> list[dict]:
    """Per stage: samples generated, judge calls (upper bound), optimizer steps, and training
    memory per GPU in GiB (see the module docstring)."""
    s, seeds = params.sampling, len(params.study.seeds)
    greedy = sum(counts[x] for x in s.greedy_splits if x in counts)
    sampled = sum(counts[x] * s.samples_for(x) for x in s.sample_splits if x in counts)
    cot = counts["test"] if params.cot.run else 0
    rows = [{"stage": "sample@base", "samples": greedy + sampled + cot,
             "judge_calls": greedy + sampled + cot, "steps": 0, "gpu_gib": 0.0}]
    evaluation = (greedy + counts["test"] * s.pass_k_samples * len(params.study.sample_seeds)
                  / seeds)
    ranks = params.compute.num_processes * params.compute.num_machines
    for method in ("grpo", "rloo"):
        cfg = getattr(params, method)
        steps = math.ceil(counts["train"] / cfg.prompts_per_step) * cfg.epochs
        rollouts = steps * cfg.prompts_per_step * cfg.group_size
        memory = (16 + (2 if cfg.beta > 0 else 0)) * n_params / ranks / GB
        rows.append({"stage": f"train@{method}", "samples": seeds * (rollouts + evaluation),
                     "judge_calls": seeds * (rollouts + evaluation), "steps": seeds * steps,
                     "gpu_gib": memory})
    for method in ("sft", "sft_known", "dpo"):
        cfg = getattr(params, method)
        steps = math.ceil(counts["train"] / cfg.batch_size) * cfg.epochs
        ref = 2 if method == "dpo" else 0
        rows.append({"stage": f"train@{method}", "samples": seeds * evaluation,
                     "judge_calls": seeds * evaluation, "steps": seeds * steps,
                     "gpu_gib": (16 + ref) * n_params / ranks / GB})
    r = params.rft
    rft_samples = r.rounds * counts["train"] * r.samples_per_item
    rows.append({"stage": "train@rft", "samples": seeds * (rft_samples + evaluation),
                 "judge_calls": seeds * (rft_samples + evaluation),
                 "steps": seeds * r.rounds * math.ceil(counts["train"] / r.batch_size),
                 "gpu_gib": 16 * n_params / ranks / GB})
    return rows


def gpu_ledger(params: Params, training_gib: float) -> dict[str, list[tuple[str, float]]]:
    """What holds one GPU's memory at once, phase by phase, as shares of
    `compute.gpu_memory_gib`: each vLLM engine at its ledger share (the compute section),
    the trainer at `training_gib`. Empty on a CPU run.

    - training: the trainer, TRL's colocated rollout engine, a judge served on the node;
    - evaluating a trained model: its engine (vLLM, in a fresh process) beside what the
      training processes still hold: TRL never destroys its colocated engine;
    - sampling the base model (sample@base): its engine and the judge.
    """
    c = params.compute
    if c.device == "cpu":
        return {}
    judge = [("judge server (compute.judge_engine)", c.judge_engine.gpu_memory_utilization)] \
        if params.judge.backend == "llm" and not params.judge.base_url else []
    rollout = [("TRL's colocated rollout engine (compute.rollout_engine)",
                c.rollout_engine.gpu_memory_utilization)] if params.rollout.vllm == "colocate" else []
    engine = [("evaluation engine (compute.gpu_memory_utilization)", c.gpu_memory_utilization)] \
        if params.sampling.engine == "vllm" else []
    return {"training": [("trainer (plan estimate)", training_gib / c.gpu_memory_gib),
                         *rollout, *judge],
            "evaluating a trained model": [*engine, *rollout, *judge],
            "sampling the base model": [*engine, *judge]}


def ledger_problems(ledger: dict[str, list[tuple[str, float]]]) -> list[str]:
    """A refusal for each phase whose co-resident processes claim more than one GPU."""
    out = []
    for phase, claims in ledger.items():
        total = sum(share for _, share in claims)
        if total > 1.0:
            names = " + ".join(f"{name} {share:.0%}" for name, share in claims)
            out.append(f"compute: while {phase}, one GPU is over-committed: {names} = "
                       f"{total:.0%} of its memory")
    return out


def render(params: Params, root: Path = Path(".")) -> str:
    """The plan as text: the items, the per-stage table and the totals."""
    counts = item_counts(params)
    n_params = model_parameters(params, root)
    rows = estimate(params, n_params, counts)
    ranks = params.compute.num_processes * params.compute.num_machines
    lines = [f"items (before dedup): train {counts['train']:,}, val {counts['val']:,}, "
             f"test {counts['test']:,}",
             f"base model: {params.models.base.repo or params.models.base.source} "
             f"({n_params / 1e9:.2f}B parameters), {ranks} training processes, "
             f"{params.compute.accelerate_config or 'no sharding config'}",
             "", "| stage | samples | judge calls (max) | optimizer steps | training GiB/GPU |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['stage']} | {row['samples']:,.0f} | {row['judge_calls']:,.0f} | "
                     f"{row['steps']:,} | {row['gpu_gib']:.1f} |")
    total = {k: sum(r[k] for r in rows) for k in ("samples", "judge_calls", "steps")}
    lines.append(f"| total | {total['samples']:,.0f} | {total['judge_calls']:,.0f} | "
                 f"{total['steps']:,} | |")
    ledger = gpu_ledger(params, max(r["gpu_gib"] for r in rows))
    if ledger:
        lines += ["", f"GPU memory ledger (shares of one {params.compute.gpu_memory_gib:g} GiB GPU "
                  "held at once):"]
        lines += [f"- {phase}: " + " + ".join(f"{name} {share:.0%}" for name, share in claims)
                  + f" = {sum(share for _, share in claims):.0%}"
                  for phase, claims in ledger.items()]
    return "\n".join(lines)

